/*
 * probe-invisible: the first registration in auto mode probes the kernel
 * with an io_uring-pinned page.  Tearing down an io_uring instance
 * interrupts the blocking system call its creating thread is in a few
 * milliseconds later (measured on 6.18: a blocking pipe write returns short,
 * epoll_wait fails with EINTR), so the probe must run outside the program's
 * threads.  Right after its first registration the program makes a blocking
 * 8 MiB pipe write to a slow reader and an epoll_wait: both must behave as
 * without the library.  (With the probe in the program's own thread, the
 * write came back short in 3 of 3 runs of this scenario.)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include "harness.h"

#define WRITE_LEN (8u << 20)

static int role(void)
{
	size_t len = 1 << 20;
	char *buf = t_map(len), *data = malloc(WRITE_LEN);
	int p[2];

	T_CHECK(data, "malloc");
	memset(buf, 0xa5, len);
	memset(data, 'x', WRITE_LEN);
	T_CHECK(t_register(buf, len, 0) == 0, "register");
	T_CHECK(pipe(p) == 0, "pipe");
	pid_t pid = fork();
	if (pid == 0) { /* a slow reader */
		char r[4096];
		close(p[1]);
		while (read(p[0], r, sizeof(r)) > 0)
			usleep(20);
		_exit(0);
	}
	close(p[0]);
	ssize_t n = write(p[1], data, WRITE_LEN);
	int e = errno;
	close(p[1]);
	T_CHECK(t_wait(pid) == 0, "reader");
	T_CHECK(n == (ssize_t)WRITE_LEN, "a blocking pipe write after the first registration returned %zd of %u (%s)", n,
		WRITE_LEN, n < 0 ? strerror(e) : "short");

	/* A second registration (the probe has run) and an epoll_wait that must simply time out. */
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev;
	T_CHECK(ep >= 0, "epoll_create1");
	T_CHECK(t_register(buf, len / 2, 0) == 0, "register");
	int r = epoll_wait(ep, &ev, 1, 100);
	T_CHECK(r == 0, "epoll_wait returned %d (%s) instead of timing out", r, r < 0 ? strerror(errno) : "an event");
	close(ep);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return role();
	for (int i = 0; i < 3; i++) /* timing: a few runs; before the fix each one failed */
		T_CHECK(t_run(argv[0], "role", 1, NULL, NULL, NULL, 0) == 0, "auto mode: run %d disturbed the program", i);
	T_CHECK(t_run(argv[0], "role", 0, NULL, NULL, NULL, 0) == 0, "without the library");
	t_pass("the auto probe leaves the program's blocking calls alone");
}
