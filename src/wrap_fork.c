/*
 * wrap_fork.c - the fork entry points.  Each one only hands its context to
 * the engine; none of them does protection work of its own.
 *
 * glibc's fork() runs the atfork handlers: prepare handlers newest first,
 * child and parent handlers oldest first.  The engine's handlers are
 * registered before anyone else's (the __register_atfork wrapper registers
 * them ahead of the first caller), so the snapshot is taken after every
 * other prepare handler and the child has its memory back before any child
 * handler of the program runs.  The same handlers are the safety net for
 * forks through C-library-internal paths: daemon and forkpty call the hidden
 * __fork (their wrappers only name the entry point for reports and
 * counters), and so do paths no wrapper sees (wordexp before glibc 2.31,
 * sunrpc, a future glibc).
 *
 * _Fork and raw clone run no handlers, so their wrappers drive the engine
 * themselves.  syscall() is wrap_syscall.c's.
 */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "common.h"
#include "engine.h"
#include "forkctx.h"
#include "interpose.h"
#include "lock.h"
#include "spawn_shim.h"
#include "stats.h"

SF_TLS struct sf_fork_ctx *sf_t_ctx;

static const struct sf_fork_ctx *live_ctx(void)
{
	struct sf_fork_ctx *c = sf_t_ctx;
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);

	if (!c || (uintptr_t)c <= here || (uintptr_t)c - here > 16384 || c->magic != SF_CTX_MAGIC)
		return NULL;
	return c;
}

static void atfork_prepare(void)
{
	const struct sf_fork_ctx *c = live_ctx();

	if (!c && sf_mode != SAFEFORK_MODE_OFF)
		sf_count_fork(SAFEFORK_ENTRY_INTERNAL, 0);
	sf_engine_prepare(c ? c->entry : SAFEFORK_ENTRY_INTERNAL, c ? c->caller : NULL);
}

static void atfork_parent(void)
{
	sf_engine_parent(SF_PID_UNKNOWN);
}

static void atfork_child(void)
{
	sf_engine_child();
	sf_spawn_child_reset();
}

extern void *__dso_handle;
static int atfork_state; /* 0 none, 1 registering, 2 registered */

static void register_handlers(void)
{
	SF_REAL(__register_atfork)(atfork_prepare, atfork_parent, atfork_child, &__dso_handle);
}

/* Register the engine's handlers, once, before any other handler if we can. */
void sf_atfork_ensure(void)
{
	sf_once(&atfork_state, register_handlers);
}

SF_EXPORT int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void), void *dso)
{
	sf_atfork_ensure();
	return SF_REAL(__register_atfork)(prepare, parent, child, dso);
}

#if SF_HAVEC_pthread_atfork
/* Binaries linked against libpthread before glibc 2.34 call this compat
 * symbol, which reaches __register_atfork inside libc, past our wrapper. */
SF_COMPAT_SYMVER(pthread_atfork);
SF_EXPORT int sf_compat_pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
	sf_atfork_ensure();
	return SF_REALC(pthread_atfork)(prepare, parent, child);
}
#endif

static void forked_or_not(pid_t pid)
{
	if (pid < 0) {
		int e = errno;
		sf_engine_fork_failed();
		errno = e;
	}
}

/* fork() through glibc's machinery, named as entry point e. */
static pid_t fork_as(enum safefork_entry e, void *caller)
{
	sf_init();
	if (sf_mode == SAFEFORK_MODE_OFF)
		return SF_REAL(fork)();
	pid_t pid = SF_VIA_GLIBC(e, 0, caller, SF_REAL(fork)());
	forked_or_not(pid);
	return pid;
}

SF_EXPORT pid_t fork(void)
{
	return fork_as(SAFEFORK_ENTRY_FORK, __builtin_return_address(0));
}

SF_EXPORT pid_t safefork_fork(void)
{
	return fork_as(SAFEFORK_ENTRY_SAFEFORK_FORK, __builtin_return_address(0));
}

/* daemon() forks through the hidden __fork and the parent _exit()s inside it. */
SF_EXPORT int daemon(int nochdir, int noclose)
{
	sf_init();
	if (sf_mode == SAFEFORK_MODE_OFF)
		return SF_REAL(daemon)(nochdir, noclose);
	return SF_VIA_GLIBC(SAFEFORK_ENTRY_DAEMON, 0, __builtin_return_address(0), SF_REAL(daemon)(nochdir, noclose));
}

typedef pid_t forkpty_fn(int *, char *, const struct termios *, const struct winsize *);

static pid_t forkpty_via(forkpty_fn *real, int *amaster, char *name, const struct termios *termp,
			 const struct winsize *winp, void *caller)
{
	sf_init();
	if (sf_mode == SAFEFORK_MODE_OFF)
		return real(amaster, name, termp, winp);
	pid_t pid = SF_VIA_GLIBC(SAFEFORK_ENTRY_FORKPTY, 0, caller, real(amaster, name, termp, winp));
	forked_or_not(pid);
	return pid;
}

SF_EXPORT pid_t forkpty(int *amaster, char *name, const struct termios *termp, const struct winsize *winp)
{
	return forkpty_via(SF_REAL(forkpty), amaster, name, termp, winp, __builtin_return_address(0));
}

#if SF_HAVEC_forkpty
/* forkpty@GLIBC_2.2.5: binaries built when forkpty lived in libutil. */
SF_COMPAT_SYMVER(forkpty);
SF_EXPORT pid_t sf_compat_forkpty(int *amaster, char *name, const struct termios *termp, const struct winsize *winp)
{
	return forkpty_via(SF_REALC(forkpty), amaster, name, termp, winp, __builtin_return_address(0));
}
#endif

#ifdef HAVE__FORK
SF_EXPORT pid_t _Fork(void)
{
	pid_t pid;

	sf_init();
	if (sf_mode == SAFEFORK_MODE_OFF)
		return SF_REAL(_Fork)();
	sf_count_fork(SAFEFORK_ENTRY__FORK, 0);
	int active = sf_engine_prepare(SAFEFORK_ENTRY__FORK, __builtin_return_address(0));
	pid = SF_REAL(_Fork)();
	if (pid == 0)
		sf_engine_child();
	else if (active)
		sf_engine_parent(pid);
	return pid;
}
#endif

struct clone_tramp {
	int (*fn)(void *);
	void *arg;
	int active;
};

/* First code of a clone child: the child's memory back, then the caller's function. */
static int clone_child(void *p)
{
	struct clone_tramp *t = p;

	if (t->active)
		sf_engine_child();
	else
		sf_stats_child_reset();
	return t->fn(t->arg);
}

static int clone_common(int (*real)(int (*)(void *), void *, int, void *, ...), int (*fn)(void *), void *stack,
			int flags, void *arg, pid_t *ptid, void *tls, pid_t *ctid, void *caller)
{
	sf_init();
	if (sf_mode == SAFEFORK_MODE_OFF || !fn)
		return real(fn, stack, flags, arg, ptid, tls, ctid);
	/* CLONE_VM shares the address space (threads, vfork-style spawns): nothing is copied, nothing to protect. */
	sf_count_fork(SAFEFORK_ENTRY_CLONE, (flags & CLONE_VM) != 0);
	if (flags & CLONE_VM)
		return real(fn, stack, flags, arg, ptid, tls, ctid);

	struct clone_tramp t = { fn, arg, 0 };
	t.active = sf_engine_prepare(SAFEFORK_ENTRY_CLONE, caller);
	int r = real(clone_child, stack, flags, &t, ptid, tls, ctid);
	if (t.active)
		sf_engine_parent(r);
	return r;
}

/* glibc's own clone reads the three optional arguments whatever the flags say; so do we. */
#define CLONE_WRAPPER(name)                                                                         \
	SF_EXPORT int name(int (*fn)(void *), void *stack, int flags, void *arg, ...)              \
	{                                                                                           \
		va_list ap;                                                                         \
		va_start(ap, arg);                                                                  \
		pid_t *ptid = va_arg(ap, pid_t *);                                                  \
		void *tls = va_arg(ap, void *);                                                     \
		pid_t *ctid = va_arg(ap, pid_t *);                                                  \
		va_end(ap);                                                                         \
		return clone_common(SF_REAL(name), fn, stack, flags, arg, ptid, tls, ctid,         \
				    __builtin_return_address(0));                                   \
	}
CLONE_WRAPPER(clone)
CLONE_WRAPPER(__clone)
