/*
 * pintest.h - what the pinning tests (verbs-*, uring-*) share: the range
 * table as safefork_stats() shows it, and what it should show.
 */
#ifndef T_PINTEST_H
#define T_PINTEST_H

#include <dlfcn.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "safefork.h"

/* The library's counters, or all zero when it is not loaded. */
static inline struct safefork_stats p_stats(void)
{
	struct safefork_stats st;
	int (*f)(struct safefork_stats *, size_t) =
		(int (*)(struct safefork_stats *, size_t))dlsym(RTLD_DEFAULT, "safefork_stats");

	memset(&st, 0, sizeof(st));
	if (f && f(&st, sizeof(st)) != 0)
		t_fail("safefork_stats failed");
	return st;
}

/* Does this run record registrations (library preloaded, mode not off)? */
#define p_tracking t_lib_active

/* Does this run copy registered ranges at fork (SAFEFORK_MODE=copy with the library)? */
static inline int p_copying(void)
{
	const char *m = getenv("SAFEFORK_MODE");
	return p_tracking() && m && !strcmp(m, "copy");
}

/* A fork and its exit: protected exactly when this run copies (what names the ranges). */
static inline void p_fork_protected_iff_copying(const char *what)
{
	struct safefork_stats before = p_stats();
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	T_CHECK(pid > 0 && t_wait(pid) == 0, "fork");
	T_CHECK((p_stats().forks_protected - before.forks_protected == 1) == p_copying(),
		"%s must be protected at fork in copy mode, and only then", what);
}

#ifdef LIB_URING_H
/* A small ring, or SKIP where io_uring is not available. */
static inline void p_ring_init(struct io_uring *ring)
{
	int r = io_uring_queue_init(8, ring, 0);
	if (r == -ENOSYS || r == -EPERM)
		t_skip("io_uring is not available here: %s", strerror(-r));
	T_CHECK(r == 0, "io_uring_queue_init: %s", strerror(-r));
}
#endif

/*
 * The table holds n ranges of `bytes` in total from this source when
 * registrations are recorded, nothing otherwise (the control runs).
 */
#define P_EXPECT(source, n, nbytes, what)                                                                  \
	do {                                                                                               \
		struct safefork_stats st_ = p_stats();                                                     \
		unsigned long long wn_ = p_tracking() ? (unsigned long long)(n) : 0;                       \
		unsigned long long wb_ = p_tracking() ? (unsigned long long)(nbytes) : 0;                  \
		T_CHECK(st_.ranges[source] == wn_ && st_.bytes[source] == wb_,                             \
			"%s: %s ranges %llu, %llu bytes; expected %llu, %llu", what, #source,             \
			st_.ranges[source], st_.bytes[source], wn_, wb_);                                  \
	} while (0)

/*
 * Run role with the library preloaded in mode, with it preloaded but off,
 * and without it; each must exit 0 with no line from the library on stderr
 * (it prints nothing when all is well).  A run without the library that dies
 * of a signal means the scenario itself does not hold here: skip.
 */
static inline void p_run_with_controls(const char *self, const char *role, const char *mode, const char *env)
{
	char err[4096];
	int st = t_run(self, role, 0, NULL, env, err, sizeof(err));
	if (st < 0)
		t_skip("%s: the run without the library died of signal %d: the scenario does not hold on this "
		       "system", role, -st);
	if (st == T_SKIP)
		exit(T_SKIP);
	T_CHECK(st == 0, "%s without the library: exit %d", role, st);
	st = t_run(self, role, 1, "off", env, err, sizeof(err));
	T_CHECK(st == 0, "%s, SAFEFORK_MODE=off: exit %d (%s)", role, st, err);
	T_CHECK(!strstr(err, "safefork:"), "%s, SAFEFORK_MODE=off: the library spoke: %s", role, err);
	st = t_run(self, role, 1, mode, env, err, sizeof(err));
	T_CHECK(st == 0, "%s, SAFEFORK_MODE=%s: exit %d (%s)", role, mode ? mode : "unset", st, err);
	T_CHECK(!strstr(err, "safefork:"), "%s, SAFEFORK_MODE=%s: the library spoke: %s", role,
		mode ? mode : "unset", err);
}

#endif
