/*
 * writer-thread: another parent thread writes into the registered range
 * while the process forks 20 times.  The parent keeps its physical pages
 * throughout (PFNs as root) and the device stays coherent; every child gets
 * a snapshot made only of values the writer had written by the fork.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"

#define LEN (256 * 4096ul)
static uint64_t *buf;
static volatile uint64_t counter;
static volatile int stop;

static void *writer(void *arg)
{
	(void)arg;
	while (!stop) {
		uint64_t g = ++counter;
		for (size_t i = 0; i < LEN / 8; i += 64)
			__atomic_store_n(&buf[i], g, __ATOMIC_RELAXED);
	}
	return NULL;
}

static int role(void)
{
	int pfns = t_can_see_pfns();
	static uint64_t pfn0[LEN / 4096];
	struct t_device dev;
	pthread_t th;
	int moved = 0;

	buf = t_map(LEN);
	memset(buf, 0, LEN);
	T_CHECK(t_register(buf, LEN, 0) == 0, "register");
	for (size_t p = 0; pfns && p < LEN / 4096; p++)
		pfn0[p] = t_pfn((char *)buf + p * 4096);
	t_dev_attach(&dev, buf, LEN);
	pthread_create(&th, NULL, writer, NULL);
	for (int f = 0; f < 20; f++) {
		uint64_t lo = counter;
		pid_t pid = fork();
		if (pid == 0) {
			/* Snapshot: every sampled word is a value written before the fork returned here. */
			uint64_t hi = counter + 1;
			for (size_t i = 0; i < LEN / 8; i += 64)
				if (buf[i] + 1 < lo || buf[i] > hi) {
					printf("child: word %zu = %lu outside [%lu, %lu]\n", i, (unsigned long)buf[i],
					       (unsigned long)lo, (unsigned long)hi);
					_exit(2);
				}
			_exit(0);
		}
		T_CHECK(pid > 0, "fork");
		T_CHECK(t_wait(pid) == 0, "child %d saw a bad snapshot", f);
		for (size_t p = 0; pfns && p < LEN / 4096; p++)
			if (t_pfn((char *)buf + p * 4096) != pfn0[p])
				moved++;
		usleep(2000);
	}
	stop = 1;
	pthread_join(th, NULL);
	/* A final generation the device must see. */
	for (size_t i = 0; i < LEN / 8; i += 64)
		buf[i] = 0xfeedull;
	static uint64_t seen[LEN / 8];
	t_dev_read(&dev, seen);
	size_t stale = 0;
	for (size_t i = 0; i < LEN / 8; i += 64)
		stale += seen[i] != 0xfeedull;
	t_note("%zu of %lu sampled words stale on the device; %d page moves seen", stale, LEN / 8 / 64, moved);
	if (stale == 0) {
		T_CHECK(moved == 0, "device coherent but %d PFN changes", moved);
		return T_COHERENT;
	}
	return T_STALE;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return role();
	return t_protect_and_control(argv[0], "writer-20-forks");
}
