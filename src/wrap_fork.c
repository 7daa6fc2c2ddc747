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
 * forks through glibc-internal paths that no wrapper sees (daemon,
 * forkpty, wordexp: all call the hidden __fork).
 *
 * _Fork and raw clone run no handlers, so their wrappers drive the engine
 * themselves.
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
#include "interpose.h"
#include "lock.h"

/*
 * Which entry point this thread's fork came through, for reports.  The
 * context lives in the wrapper's stack frame; the thread-local pointer to it
 * is written only when it changes.  Writing thread-local memory after every
 * fork would cost the parent a page fault per fork (the fork has just
 * write-protected that page), which a fork with nothing registered must not
 * pay.  The prepare handler trusts the pointer only if it points just above
 * its own frame (the wrapper is a few frames up) and the frame still holds
 * the magic the wrapper clears on return.
 */
#define CTX_MAGIC 0x5afef0c4c0de0001ull
struct fork_ctx {
	volatile unsigned long long magic;
	const char *entry;
	void *caller;
};
static SF_TLS struct fork_ctx *t_ctx;

static const struct fork_ctx *live_ctx(void)
{
	struct fork_ctx *c = t_ctx;
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);

	if (!c || (uintptr_t)c <= here || (uintptr_t)c - here > 16384 || c->magic != CTX_MAGIC)
		return NULL;
	return c;
}

static void atfork_prepare(void)
{
	const struct fork_ctx *c = live_ctx();
	sf_engine_prepare(c ? c->entry : "fork (internal glibc path)", c ? c->caller : NULL);
}

static void atfork_parent(void)
{
	sf_engine_parent(SF_PID_UNKNOWN);
}

static void atfork_child(void)
{
	sf_engine_child();
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

#ifdef SF_VERC_pthread_atfork
/* Binaries linked against libpthread before glibc 2.34 call this compat
 * symbol, which reaches __register_atfork inside libc, past our wrapper. */
static int (*real_pthread_atfork_compat)(void (*)(void), void (*)(void), void (*)(void));

int sf_pthread_atfork_compat(void (*prepare)(void), void (*parent)(void), void (*child)(void));
__asm__(".symver sf_pthread_atfork_compat, pthread_atfork@" SF_VERC_pthread_atfork);
__attribute__((visibility("default"))) int sf_pthread_atfork_compat(void (*prepare)(void), void (*parent)(void),
								   void (*child)(void))
{
	sf_atfork_ensure();
	if (!real_pthread_atfork_compat)
		real_pthread_atfork_compat = sf_next_symbol("pthread_atfork", SF_VERC_pthread_atfork);
	return real_pthread_atfork_compat(prepare, parent, child);
}
#endif

static pid_t fork_via_glibc(const char *entry, void *caller)
{
	pid_t pid;

	sf_init();
	if (sf_mode == SAFEFORK_MODE_OFF)
		return SF_REAL(fork)();
	sf_atfork_ensure();
	struct fork_ctx ctx = { CTX_MAGIC, entry, caller };
	if (t_ctx != &ctx)
		t_ctx = &ctx;
	pid = SF_REAL(fork)();
	ctx.magic = 0;
	if (pid < 0) {
		int e = errno;
		sf_engine_fork_failed();
		errno = e;
	}
	return pid;
}

SF_EXPORT pid_t fork(void)
{
	return fork_via_glibc("fork", __builtin_return_address(0));
}

SF_EXPORT pid_t safefork_fork(void)
{
	return fork_via_glibc("safefork_fork", __builtin_return_address(0));
}

#ifdef HAVE__FORK
SF_EXPORT pid_t _Fork(void)
{
	pid_t pid;

	sf_init();
	if (sf_mode == SAFEFORK_MODE_OFF)
		return SF_REAL(_Fork)();
	int active = sf_engine_prepare("_Fork", __builtin_return_address(0));
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
	return t->fn(t->arg);
}

SF_EXPORT int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
	va_list ap;
	pid_t *ptid;
	void *tls;
	pid_t *ctid;

	/* glibc's own clone reads these three whatever the flags say; so do we. */
	va_start(ap, arg);
	ptid = va_arg(ap, pid_t *);
	tls = va_arg(ap, void *);
	ctid = va_arg(ap, pid_t *);
	va_end(ap);

	sf_init();
	/* CLONE_VM shares the address space: nothing is copied, nothing to protect. */
	if (sf_mode == SAFEFORK_MODE_OFF || (flags & CLONE_VM) || !fn)
		return SF_REAL(clone)(fn, stack, flags, arg, ptid, tls, ctid);

	struct clone_tramp t = { fn, arg, 0 };
	t.active = sf_engine_prepare("clone", __builtin_return_address(0));
	int r = SF_REAL(clone)(clone_child, stack, flags, &t, ptid, tls, ctid);
	if (t.active)
		sf_engine_parent(r);
	return r;
}
