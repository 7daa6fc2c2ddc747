/*
 * rlimit-fork: the staging memory cannot be mapped at fork (RLIMIT_AS),
 * fork after fork from 2 threads (STRESS_SCALE x 400).  A child kept
 * alive holds the current staging pool, so every fork needs a new one and
 * the limit refuses it (nearly always: see below).  Each fork still happens; the fallback keeps the
 * registered pages out of the child (zeros, as MADV_WIPEONFORK: never
 * another fork's data, never torn), the parents keep their physical pages
 * (the device is coherent at the end), one "safefork:" line in all, one
 * fallback counted per fork.  With the limit lifted the children get their
 * copy again.  Control: SAFEFORK_MODE=off and no library leave the device
 * stale.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "stress.h"

#define HALF (4ul << 20)
static char *buf;
static long forks_each;
static int active;
static unsigned zeros_seen[2], copies_seen[2];

static int all_zero(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i += 8)
		if (*(const uint64_t *)(p + i))
			return 0;
	return 1;
}

static volatile int go;

static void *forker(void *arg)
{
	int id = (int)(uintptr_t)arg;
	while (!go)
		usleep(1000);
	char *mine = buf + (size_t)id * HALF;
	for (long i = 0; i < forks_each; i++) {
		uint32_t g = 10 + (uint32_t)i;
		t_fill(mine, HALF, g);
		pid_t pid = fork();
		if (pid == 0)
			_exit(t_gen_of(mine, HALF, NULL) == g ? 0 : all_zero(mine, HALF) ? 1 : 2);
		T_CHECK(pid > 0, "fork under RLIMIT_AS: %s", strerror(errno));
		t_fill(mine, HALF, g + 1000000);
		int st = t_wait(pid);
		T_CHECK(st == 0 || st == 1, "thread %d fork %ld: the child saw neither its data nor zeros (%d)", id, i, st);
		(st ? zeros_seen : copies_seen)[id]++;
	}
	return NULL;
}

static int role(void)
{
	long forks = s_n(400, 20);
	struct t_device dev;
	int hold[2];

	active = t_lib_active();
	s_watchdog(600);
	buf = t_map(2 * HALF);
	for (int i = 0; i < 2; i++) {
		t_fill(buf + i * HALF, HALF, 1);
		T_CHECK(t_register(buf + i * HALF, HALF, 0) == 0, "register");
	}
	t_dev_attach(&dev, buf, 2 * HALF);
	/* a child that keeps the staging pool it got: the next fork must map another one */
	T_CHECK(pipe(hold) == 0, "pipe");
	pid_t holder = fork();
	if (holder == 0) {
		char c;
		close(hold[1]);
		_exit(read(hold[0], &c, 1) < 0);
	}
	close(hold[0]);
	struct safefork_stats before = s_stats();
	pthread_t th[2];
	forks_each = forks / 2;
	for (int i = 0; i < 2; i++) /* the threads' stacks first */
		T_CHECK(pthread_create(&th[i], NULL, forker, (void *)(uintptr_t)i) == 0, "pthread_create");
	struct rlimit rl = { t_vm_size() + (1 << 20), RLIM_INFINITY };
	T_CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit");
	go = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	rl.rlim_cur = RLIM_INFINITY;
	setrlimit(RLIMIT_AS, &rl);
	close(hold[1]);
	T_CHECK(t_wait(holder) == 0, "holder");
	struct safefork_stats after = s_stats();
	unsigned zeros = zeros_seen[0] + zeros_seen[1];
	if (active) {
		/* (the refused pool's predecessor is unmapped from the parent: now and then that frees
		 * enough room under the limit for a new one, and that child gets its copy) */
		T_CHECK(zeros * 2 >= (unsigned)forks_each * 2, "only %u of %ld children went without staging", zeros,
			forks_each * 2);
		T_CHECK(after.fallbacks - before.fallbacks == zeros, "%llu fallbacks counted for %u children without "
			"staging", after.fallbacks - before.fallbacks, zeros);
	} else
		T_CHECK(zeros == 0, "children saw zeros without the library acting");
	/* limit lifted: copies again */
	forks_each = 2;
	memset(zeros_seen, 0, sizeof(zeros_seen));
	forker((void *)0);
	T_CHECK(zeros_seen[0] == 0, "after the limit went, the children still get zeros");

	t_fill(buf, 2 * HALF, 999);
	char *seen = malloc(2 * HALF);
	T_CHECK(seen != NULL, "malloc");
	t_dev_read(&dev, seen);
	size_t stale = s_stale_pages(seen, 2 * HALF, 999);
	printf("figures: %ld forks from 2 threads with the staging refused by RLIMIT_AS (%u children got zeros, "
	       "%llu fallbacks); %zu of %lu device pages stale\n", forks, zeros,
	       after.fallbacks - before.fallbacks, stale, 2 * HALF / 4096);
	return stale ? T_STALE : T_COHERENT;
}

int main(int argc, char **argv)
{
	char err[8192];

	if (argc > 1)
		return role();
	int st = t_run(argv[0], "rlimit", 1, "copy", NULL, err, sizeof(err));
	T_CHECK(st == T_COHERENT, "with the library: status %d, stderr: %s", st, err);
	T_CHECK(t_msg_lines(err, NULL) == 1 && strstr(err, "staging memory"), "want one line about the staging, got: %s", err);
	t_note("said: %s", err);
	T_CHECK(t_expect(argv[0], "rlimit", 1, "off", T_STALE) == 0, "control");
	T_CHECK(t_expect(argv[0], "rlimit", 0, NULL, T_STALE) == 0, "control");
	t_pass("staging refused at every fork: the forks happen, children get zeros, the parents keep their pages");
}
