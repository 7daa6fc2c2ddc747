/*
 * concurrent: 4 threads register and unregister ranges without pause while
 * 2 threads fork 100 times each.  A stable registered buffer must reach
 * every child intact, nothing may deadlock (watchdog), and afterwards the
 * parent has no more mappings than before.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"

#define STABLE (32 * 4096ul)
#define CHURN (4 << 20)
static char *stable, *churn;
static volatile int stop;

static void *churner(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	while (!stop) {
		size_t off = (size_t)rand_r(&seed) % (CHURN - 65536), len = 1 + (size_t)rand_r(&seed) % 65536;
		if (t_register(churn + off, len, 0) != 0)
			t_fail("register");
		if (t_unregister(churn + off, len) != 0)
			t_fail("unregister");
	}
	return NULL;
}

static void *forker(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100; i++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(t_gen_of(stable, STABLE, NULL) == 5 ? 0 : 2);
		if (pid < 0 || t_wait(pid) != 0)
			t_fail("fork %d: child saw a damaged buffer", i);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		pthread_t c[4], f[2];
		t_watchdog(120);
		stable = t_map(STABLE);
		churn = t_map(CHURN);
		memset(churn, 1, CHURN);
		t_fill(stable, STABLE, 5);
		T_CHECK(t_register(stable, STABLE, 0) == 0, "register");
		int vmas = 0;
		/* Round 0 warms up what legitimately stays (thread stacks glibc caches, the
		 * staging pool); round 1 must then leave the mappings exactly as they were. */
		for (int round = 0; round < 2; round++) {
			stop = 0;
			for (int i = 0; i < 4; i++)
				pthread_create(&c[i], NULL, churner, (void *)(uintptr_t)(i + 1));
			for (int i = 0; i < 2; i++)
				pthread_create(&f[i], NULL, forker, NULL);
			for (int i = 0; i < 2; i++)
				pthread_join(f[i], NULL);
			stop = 1;
			for (int i = 0; i < 4; i++)
				pthread_join(c[i], NULL);
			if (round == 0)
				vmas = t_vma_count();
		}
		int after = t_vma_count();
		T_CHECK(after == vmas, "mappings changed from %d to %d", vmas, after);
		t_pass("400 forks from 2 threads against 4 registering threads");
	}
	T_CHECK(t_run(argv[0], "run", 1, "copy", NULL, NULL, 0) == 0, "under the library");
	t_pass("no deadlock, every child intact");
}
