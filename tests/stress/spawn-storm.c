/*
 * spawn-storm: 8 threads call system() and popen()/pclose() in a loop
 * (STRESS_SCALE x 2000 children in all) while a 9th forks and writes a
 * registered buffer the device holds.  Every system() returns its
 * command's status, every popen() stream reads what its command wrote (or
 * takes what is written to it) and pclose() returns its status; afterwards
 * SIGINT and SIGQUIT are handled as before (system() ignores them only
 * while it runs: reference-counted across threads), the signal mask is
 * unchanged, no child is left to reap, no descriptor or mapping more.
 * Run with glibc's spawns and with the library's own (SAFEFORK_SPAWN=shim).
 * The device: coherent with the library, stale with it off or without it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "stress.h"

#define THREADS 8
#define LEN (16 * 4096ul)

static long per_thread;
static char *buf;
static volatile int stop;

static void *spawner(void *arg)
{
	int id = (int)(uintptr_t)arg;
	char cmd[128], line[128], want[64];

	for (long i = 0; i < per_thread; i++) {
		switch (i % 3) {
		case 0: {
			int code = (int)((id + i) % 7);
			snprintf(cmd, sizeof(cmd), "exit %d", code);
			int st = system(cmd);
			if (!WIFEXITED(st) || WEXITSTATUS(st) != code)
				t_fail("thread %d: system(\"%s\") returned %#x", id, cmd, st);
			break;
		}
		case 1: {
			snprintf(want, sizeof(want), "t%d-%ld", id, i);
			snprintf(cmd, sizeof(cmd), "echo %s", want);
			FILE *f = popen(cmd, "r");
			if (!f)
				t_fail("thread %d: popen: %s", id, strerror(errno));
			if (!fgets(line, sizeof(line), f) || strncmp(line, want, strlen(want)))
				t_fail("thread %d: popen read \"%s\", expected \"%s\"", id, line, want);
			int st = pclose(f);
			if (st != 0)
				t_fail("thread %d: pclose (r) returned %#x", id, st);
			break;
		}
		default: {
			FILE *f = popen("cat >/dev/null", "w");
			if (!f)
				t_fail("thread %d: popen w: %s", id, strerror(errno));
			fprintf(f, "thread %d line %ld\n", id, i);
			int st = pclose(f);
			if (st != 0)
				t_fail("thread %d: pclose (w) returned %#x", id, st);
		}
		}
	}
	return NULL;
}

static long forks_done;

static void *forker(void *arg)
{
	(void)arg;
	for (uint32_t g = 10; !stop; g++) {
		t_fill(buf, LEN, g);
		pid_t pid = fork();
		if (pid == 0)
			_exit(t_gen_of(buf, LEN, NULL) == g ? 0 : 2);
		T_CHECK(pid > 0, "fork: %s", strerror(errno));
		t_fill(buf, LEN, g + 1000000);
		T_CHECK(waitpid(pid, NULL, 0) == pid, "waitpid");
		forks_done++;
	}
	return NULL;
}

static void storm(long total)
{
	pthread_t s[THREADS], f;
	per_thread = total / THREADS;
	stop = 0;
	T_CHECK(pthread_create(&f, NULL, forker, NULL) == 0, "pthread_create");
	for (int i = 0; i < THREADS; i++)
		T_CHECK(pthread_create(&s[i], NULL, spawner, (void *)(uintptr_t)i) == 0, "pthread_create");
	for (int i = 0; i < THREADS; i++)
		pthread_join(s[i], NULL);
	stop = 1;
	pthread_join(f, NULL);
}

static int role(void)
{
	long total = s_n(2000, 48);
	struct t_device dev;
	struct sigaction before_int, before_quit, now;
	sigset_t mask_before, mask_now;

	s_watchdog(900);
	buf = t_map(LEN);
	t_fill(buf, LEN, 1);
	T_CHECK(t_register(buf, LEN, 0) == 0, "register");
	t_dev_attach(&dev, buf, LEN);
	sigaction(SIGINT, NULL, &before_int);
	sigaction(SIGQUIT, NULL, &before_quit);
	pthread_sigmask(SIG_SETMASK, NULL, &mask_before);

	storm(THREADS * 6); /* warm-up: cached thread stacks, the staging pool */
	int vmas = t_vma_count(), fds = t_fd_count();
	storm(total);

	sigaction(SIGINT, NULL, &now);
	T_CHECK(now.sa_handler == before_int.sa_handler, "SIGINT's disposition changed after the storm");
	sigaction(SIGQUIT, NULL, &now);
	T_CHECK(now.sa_handler == before_quit.sa_handler, "SIGQUIT's disposition changed after the storm");
	pthread_sigmask(SIG_SETMASK, NULL, &mask_now);
	T_CHECK(sigismember(&mask_now, SIGCHLD) == sigismember(&mask_before, SIGCHLD), "SIGCHLD left blocked");
	errno = 0;
	T_CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "a child was left to reap");
	T_CHECK(t_fd_count() <= fds, "descriptors grew from %d to %d", fds, t_fd_count());
	T_CHECK(t_vma_count() <= vmas + 4, "mappings grew from %d to %d", vmas, t_vma_count());

	t_fill(buf, LEN, 999);
	char *seen = malloc(LEN);
	T_CHECK(seen != NULL, "malloc");
	t_dev_read(&dev, seen);
	size_t stale = s_stale_pages(seen, LEN, 999);
	struct safefork_stats st = s_stats();
	printf("figures: %ld system()/popen() children from %d threads, %ld forks beside them (%llu children "
	       "counted by the library, %llu sharing the address space); %zu of %lu device pages stale\n",
	       per_thread * THREADS, THREADS, forks_done, s_forks(&st), st.forks_shared, stale, LEN / 4096);
	return stale ? T_STALE : T_COHERENT;
}

int main(int argc, char **argv)
{
	char err[4096];

	if (argc > 1)
		return role();
	int st = t_run(argv[0], "storm", 1, "copy", "SAFEFORK_SPAWN=shim", err, sizeof(err));
	T_CHECK(st == T_COHERENT && !*err, "SAFEFORK_SPAWN=shim: status %d, stderr: %s", st, err);
	t_note("the library's own spawns: fine");
	T_CHECK(t_expect(argv[0], "storm", 1, "copy", T_COHERENT) == 0, "glibc's spawns");
	T_CHECK(t_expect(argv[0], "storm", 1, "off", T_STALE) == 0, "control");
	T_CHECK(t_expect(argv[0], "storm", 0, NULL, T_STALE) == 0, "control");
	t_pass("system()/popen() storms from many threads beside forks: every status and stream right, signals "
	       "and descriptors as before, the device coherent");
}
