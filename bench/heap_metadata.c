/*
 * heap_metadata: how often does a child find malloc's metadata inconsistent
 * when registered heap buffers share pages with it and other threads
 * malloc/free in the same arena during the fork?
 *
 * glibc's fork() takes the malloc locks after every atfork prepare handler,
 * so libsafefork's snapshot of a partly registered page is taken while
 * other threads may still be changing the chunk headers on it.  Run with
 * MALLOC_ARENA_MAX=1 to put every thread in one arena (the worst case) and
 * without it (glibc's default: a thread mostly has an arena of its own):
 *   SAFEFORK_MODE=copy LD_PRELOAD=.../libsafefork.so bench/heap_metadata [forks]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;

static void *churn(void *arg)
{
	void *p[64] = { 0 };
	unsigned seed = (unsigned)(size_t)arg;

	while (!stop) {
		int i = rand_r(&seed) % 64;
		free(p[i]);
		p[i] = malloc(16 + (size_t)(rand_r(&seed) % 200));
	}
	for (int i = 0; i < 64; i++)
		free(p[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	int (*reg)(const void *, size_t, unsigned) =
		(int (*)(const void *, size_t, unsigned))dlsym(RTLD_DEFAULT, "safefork_register");
	int forks = argc > 1 ? atoi(argv[1]) : 1000, failed = 0;
	const char *mode = getenv("SAFEFORK_MODE"), *arenas = getenv("MALLOC_ARENA_MAX");
	pthread_t th[2];
	char *bufs[64];

	/* 64 registered heap buffers, their chunk headers on partly registered pages */
	for (int i = 0; i < 64; i++) {
		bufs[i] = malloc(3000 + (size_t)i * 13);
		memset(bufs[i], 1, 3000);
		if (reg)
			reg(bufs[i], 3000, 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, churn, (void *)(size_t)(i + 1));
	for (int f = 0; f < forks; f++) {
		pid_t pid = fork();
		if (pid == 0) {
			void *q[200];
			for (int k = 0; k < 200; k++)
				q[k] = malloc(16 + (size_t)k * 7);
			for (int k = 0; k < 200; k++)
				free(q[k]);
			_exit(0);
		}
		int st;
		waitpid(pid, &st, 0);
		failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	stop = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	printf("heap_metadata: mode=%s MALLOC_ARENA_MAX=%s library=%s: %d forks, 64 registered heap buffers, "
	       "2 threads in malloc/free: %d children failed in malloc\n",
	       mode ? mode : "unset", arenas ? arenas : "unset", reg ? "loaded" : "absent", forks, failed);
	return 0;
}
