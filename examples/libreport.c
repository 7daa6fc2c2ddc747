/*
 * libreport.c - a stand-in for a third-party library that forks behind the
 * caller's back.  Built as its own shared library (libreport.so) so the fork
 * really happens in code the application did not write.
 *
 * The helper is started with a real fork().  That matters: since glibc 2.29
 * system(), popen() and posix_spawn() start children with
 * clone(CLONE_VM|CLONE_VFORK); the child borrows the parent's memory, no page
 * is made copy-on-write, and the DMA problem does not occur.  Code that still
 * calls fork() does - older libraries, daemon/plugin helpers, Python's
 * subprocess with preexec_fn, any fork()+exec by hand - and that is what an
 * application usually cannot see or change.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libreport.h"

int report_status(const char *what)
{
	/* Libraries flush before forking so buffered output is not written twice. */
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* The helper: one line, then _exit (no atexit handlers, no stdio flush). */
		dprintf(STDOUT_FILENO, "  libreport: helper pid %ld logged \"%s\" (a fork the app never asked for)\n",
			(long)getpid(), what);
		_exit(0);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		errno = ECHILD;
		return -1;
	}
	return 0;
}
