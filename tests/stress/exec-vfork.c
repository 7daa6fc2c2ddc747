/*
 * exec-vfork: children that exec, from a process with a registered buffer
 * the device holds (STRESS_SCALE x 500 of each):
 *   fork + execve - the new image starts with the library's table empty,
 *                   no staging mapping, no descriptor of ours (no more
 *                   than the test process was started with);
 *                   the parent writes right after each fork;
 *   vfork + execve, vfork + _exit - the child shares the parent's memory
 *                   until then: nothing to copy, the parent's data intact.
 * Then the device must be coherent with the library (0 stale pages) and
 * stale with SAFEFORK_MODE=off or without it (the control: the plain forks
 * moved the parent off the device's pages).  The library says nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "stress.h"

#define LEN (32 * 4096ul)
extern char **environ;

/* The exec()ed image: what it starts with. */
static int image(void)
{
	int fds = t_fd_count(), base = atoi(getenv("S_BASE_FDS") ? getenv("S_BASE_FDS") : "3");
	if (fds > base) {
		printf("image: %d descriptors open, %d before the test opened any\n", fds, base);
		return 2;
	}
	if (t_maps_contains("safefork-staging")) {
		printf("image: a staging mapping survived exec\n");
		return 3;
	}
	struct safefork_stats st = s_stats();
	for (int i = 0; i < SAFEFORK_SOURCE_MAX; i++)
		if (st.ranges[i])
			return 4;
	return 0;
}

static int role(void)
{
	long n = s_n(500, 20);
	char *self = "/proc/self/exe";
	char *argv[] = { self, "image", NULL };
	struct t_device dev;
	char *buf = t_map(LEN);

	s_watchdog(600);
	char base[32];
	snprintf(base, sizeof(base), "%d", t_fd_count()); /* what this process was started with */
	setenv("S_BASE_FDS", base, 1);
	t_fill(buf, LEN, 1);
	T_CHECK(t_register(buf, LEN, 0) == 0, "register");
	t_dev_attach(&dev, buf, LEN);
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			execve(self, argv, environ);
			_exit(127);
		}
		T_CHECK(pid > 0, "fork: %s", strerror(errno));
		t_fill(buf, LEN, 2 + (uint32_t)i); /* while the child may still share the pages */
		int st = t_wait(pid);
		T_CHECK(st == 0, "fork + exec %ld: the new image said %d", i, st);
	}
	for (long i = 0; i < n; i++) {
		pid_t pid = vfork();
		if (pid == 0) {
			if (i % 2)
				_exit(0);
			execve(self, argv, environ);
			_exit(127);
		}
		T_CHECK(pid > 0, "vfork: %s", strerror(errno));
		int st = t_wait(pid);
		T_CHECK(st == 0, "vfork %ld: status %d", i, st);
		T_CHECK(t_gen_of(buf, LEN, NULL) == 1 + n, "vfork %ld: the parent's data changed", i);
	}
	t_fill(buf, LEN, 999);
	char *seen = malloc(LEN);
	T_CHECK(seen != NULL, "malloc");
	t_dev_read(&dev, seen);
	size_t stale = s_stale_pages(seen, LEN, 999);
	printf("figures: %ld fork+execve, %ld vfork+execve, %ld vfork+_exit; %zu of %lu device pages stale\n", n,
	       (n + 1) / 2, n / 2, stale, LEN / 4096);
	return stale ? T_STALE : T_COHERENT;
}

int main(int argc, char **argv)
{
	char err[4096];

	if (argc > 1)
		return !strcmp(argv[1], "image") ? image() : role();
	int st = t_run(argv[0], "exec", 1, "copy", NULL, err, sizeof(err));
	T_CHECK(st == T_COHERENT && !*err, "with the library: status %d, stderr: %s", st, err);
	T_CHECK(t_expect(argv[0], "exec", 1, NULL, T_COHERENT) == 0, "auto");
	T_CHECK(t_expect(argv[0], "exec", 1, "off", T_STALE) == 0, "control");
	T_CHECK(t_expect(argv[0], "exec", 0, NULL, T_STALE) == 0, "control");
	t_pass("exec after fork and vfork: new images start clean, the parent keeps its pages");
}
