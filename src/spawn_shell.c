/*
 * spawn_shell.c - system(), popen() and pclose() over sf_spawn(): the
 * child is created without a copy of the address space.  The semantics are
 * glibc 2.36's (stdlib/system.c, libio/iopopen.c), which old glibc shares
 * except for the way it creates the child:
 *   system: SIGINT and SIGQUIT ignored (reference-counted across threads)
 *     and SIGCHLD blocked in the caller while it waits; the shell gets the
 *     caller's mask and default SIGINT/SIGQUIT unless they were ignored; a
 *     shell that cannot start reads as exit status 127; a cancelled caller
 *     kills and reaps the shell.  system(NULL) asks whether a shell runs.
 *   popen: modes r, w, plus e (close-on-exec on the caller's end); the
 *     child gets the pipe on fd 0 or 1 and none of the earlier popen()
 *     streams (POSIX); pclose waits (not a cancellation point) and returns
 *     the wait status.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "interpose.h"
#include "lock.h"
#include "spawn_shim.h"

extern char **environ;

#define SHELL_PATH "/bin/sh"

/* ---------------------------------------------------------------- system */

static sf_lock_t sys_lock = SF_LOCK_INIT;
static int sys_refs;
static struct sigaction sys_intr, sys_quit; /* the caller's, saved by the first of concurrent calls */

/* Returns 0, or -1 when a disposition could not be put back. */
static int sys_release(void)
{
	int rc = 0;

	sf_lock(&sys_lock);
	if (--sys_refs == 0)
		rc = sigaction(SIGINT, &sys_intr, NULL) | sigaction(SIGQUIT, &sys_quit, NULL);
	sf_unlock(&sys_lock);
	return rc ? -1 : 0;
}

static void system_cancelled(void *arg)
{
	pid_t pid = *(pid_t *)arg;

	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	sys_release();
}

static int do_system(const char *line)
{
	struct sigaction ign, intr, quit;
	sigset_t chld, omask, reset;
	posix_spawnattr_t attr;
	pid_t pid = -1;
	int status;

	sigemptyset(&ign.sa_mask);
	ign.sa_handler = SIG_IGN;
	ign.sa_flags = 0;
	sf_lock(&sys_lock);
	if (sys_refs++ == 0) {
		sigaction(SIGINT, &ign, &sys_intr);
		sigaction(SIGQUIT, &ign, &sys_quit);
	}
	intr = sys_intr;
	quit = sys_quit;
	sf_unlock(&sys_lock);

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, &omask) < 0) {
		sys_release();
		return -1;
	}
	sigemptyset(&reset);
	if (intr.sa_handler != SIG_IGN)
		sigaddset(&reset, SIGINT);
	if (quit.sa_handler != SIG_IGN)
		sigaddset(&reset, SIGQUIT);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &omask);
	posix_spawnattr_setsigdefault(&attr, &reset);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)line, NULL };
	int ret = sf_spawn(&pid, SHELL_PATH, NULL, &attr, argv, environ, 0);
	posix_spawnattr_destroy(&attr);

	if (ret == 0) {
		/* waitpid is the cancellation point; a cancelled caller leaves no shell behind */
		pthread_cleanup_push(system_cancelled, &pid);
		pid_t w;
		while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
			;
		if (w != pid)
			status = -1;
		pthread_cleanup_pop(0);
	} else {
		status = 127 << 8; /* POSIX: as if the shell had exited with 127 */
		errno = ret;       /* glibc's spawn leaves the child's errno behind; callers may look */
	}
	if (sys_release() != 0 || sigprocmask(SIG_SETMASK, &omask, NULL) != 0)
		status = -1;
	return status;
}

int sf_shim_system(const char *line)
{
	if (!line)
		return do_system("exit 0") == 0;
	return do_system(line);
}

/* ---------------------------------------------------------------- popen / pclose */

struct pstream {
	FILE *fp;
	pid_t pid;
	struct pstream *next;
};
static struct pstream *streams;
static int nstreams; /* read without the lock by the fclose wrapper: 0 is the common case */
static sf_lock_t streams_lock = SF_LOCK_INIT;

FILE *sf_shim_popen(const char *command, const char *mode)
{
	int do_read = 0, do_write = 0, do_cloexec = 0, fds[2];

	for (const char *m = mode; *m; m++) {
		switch (*m) {
		case 'r':
			do_read = 1;
			break;
		case 'w':
			do_write = 1;
			break;
		case 'e':
			do_cloexec = 1;
			break;
		default:
			errno = EINVAL;
			return NULL;
		}
	}
	if (do_read == do_write) {
		errno = EINVAL;
		return NULL;
	}
	struct pstream *ps = malloc(sizeof(*ps));
	if (!ps)
		return NULL;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		free(ps);
		return NULL;
	}
	int parent_end = do_read ? fds[0] : fds[1], child_end = do_read ? fds[1] : fds[0], child_fd = do_read ? 1 : 0;
	int err = 0;
	posix_spawn_file_actions_t fa;
	FILE *fp = fdopen(parent_end, do_read ? "r" : "w");
	if (!fp) {
		err = errno;
		close(parent_end);
		close(child_end);
		free(ps);
		errno = err;
		return NULL;
	}
	posix_spawn_file_actions_init(&fa);
	/* The pipe may already be on the child's fd (0 or 1 were closed): move it, or dup2 could not clear close-on-exec. */
	if (child_end == child_fd) {
		int tmp = fcntl(child_end, F_DUPFD_CLOEXEC, 0);
		if (tmp < 0)
			err = errno;
		close(child_end);
		child_end = tmp;
	}
	if (!err)
		err = posix_spawn_file_actions_adddup2(&fa, child_end, child_fd);

	/* The list is held from the walk to the insertion: no stream can slip past a child. */
	sf_lock(&streams_lock);
	for (struct pstream *p = streams; p && !err; p = p->next) {
		int fd = fileno_unlocked(p->fp);
		if (fd >= 0 && fd != child_fd)
			err = posix_spawn_file_actions_addclose(&fa, fd);
	}
	if (!err) {
		char *argv[] = { (char *)"sh", (char *)"-c", (char *)command, NULL };
		err = sf_spawn(&ps->pid, SHELL_PATH, &fa, NULL, argv, environ, 0);
		if (err < 0)
			err = ENOSYS; /* cannot happen: sf_popen is only used when the layout is known */
	}
	if (!err) {
		ps->fp = fp;
		ps->next = streams;
		streams = ps;
		__atomic_store_n(&nstreams, nstreams + 1, __ATOMIC_RELAXED);
	}
	sf_unlock(&streams_lock);
	posix_spawn_file_actions_destroy(&fa);
	if (child_end >= 0)
		close(child_end);
	if (err) {
		SF_REAL(fclose)(fp);
		free(ps);
		errno = err;
		return NULL;
	}
	if (!do_cloexec)
		fcntl(parent_end, F_SETFD, 0);
	return fp;
}

int sf_shim_pclose(FILE *fp, int *status)
{
	struct pstream **pp, *ps = NULL;

	if (!__atomic_load_n(&nstreams, __ATOMIC_RELAXED))
		return 0;
	sf_lock(&streams_lock);
	for (pp = &streams; *pp; pp = &(*pp)->next)
		if ((*pp)->fp == fp) {
			ps = *pp;
			*pp = ps->next;
			__atomic_store_n(&nstreams, nstreams - 1, __ATOMIC_RELAXED);
			break;
		}
	sf_unlock(&streams_lock);
	if (!ps)
		return 0;
	pid_t pid = ps->pid, w;
	int ws = 0, state;
	free(ps);
	SF_REAL(fclose)(fp);
	do {
		/* not a cancellation point (glibc) */
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
		w = waitpid(pid, &ws, 0);
		pthread_setcancelstate(state, NULL);
	} while (w < 0 && errno == EINTR);
	*status = w < 0 ? -1 : ws;
	return 1;
}

void sf_spawn_child_reset(void)
{
	sf_lock_reset(&sys_lock);
	sf_lock_reset(&streams_lock);
}
