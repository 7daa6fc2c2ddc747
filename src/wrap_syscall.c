/*
 * wrap_syscall.c - the C side of the syscall() wrapper: raw SYS_fork,
 * SYS_clone and SYS_clone3 that copy the address space (io_uring_register
 * goes on to wrap_uring.c).  The assembly front
 * (wrap_syscall.S) sends everything else to libc directly.
 *
 * A raw clone with a stack of its own cannot be protected: its child starts
 * on that stack past any code of ours, so nothing could give it its memory
 * back.  It is passed through and reported once.
 */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"
#include "engine.h"
#include "interpose.h"
#include "msg.h"
#include "ranges.h"
#include "report.h"
#include "stats.h"
#include "sysmem.h"

_Static_assert(SAFEFORK_ENTRY_SYSCALL == 3 && SAFEFORK_MODE_OFF == 5, "constants in wrap_syscall.S");

/* struct clone_args (linux/sched.h), the fields read here. */
#define CLONE_ARGS_FLAGS 0
#define CLONE_ARGS_STACK 5

/* Word i of the caller's struct clone_args, without faulting on a bad pointer; -1 when unreadable. */
static int read_clone_arg(const void *args, unsigned i, uint64_t *out)
{
	return args ? sf_peek(out, (const uint64_t *)args + i, sizeof(*out)) : -1;
}

SF_HIDDEN int sf_clone3_shares_vm(const void *args)
{
	uint64_t flags;

	return read_clone_arg(args, CLONE_ARGS_FLAGS, &flags) == 0 && (flags & CLONE_VM);
}

static int once_own_stack;

/* wrap_uring.c: io_uring_register(2) through syscall(). */
long sf_uring_syscall(long fd, long op, long arg, long nr, long a5, long a6);

SF_HIDDEN long sf_syscall_slow(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	void *caller = __builtin_return_address(0); /* the front jumped here: this is the program's call site */
	int protectable = 1;
	uint64_t stack = 0;

	if (nr == SYS_io_uring_register)
		return sf_uring_syscall(a1, a2, a3, a4, a5, a6);
	sf_init();
	if (nr == SYS_clone)
		protectable = a2 == 0;
	else if (nr == SYS_clone3)
		protectable = read_clone_arg((const void *)a1, CLONE_ARGS_STACK, &stack) == 0 && stack == 0;
	else if (nr != SYS_fork)
		return SF_REAL(syscall)(nr, a1, a2, a3, a4, a5, a6); /* reached before resolution */
	if (sf_mode == SAFEFORK_MODE_OFF)
		return SF_REAL(syscall)(nr, a1, a2, a3, a4, a5, a6);

	sf_count_fork(SAFEFORK_ENTRY_SYSCALL, 0);
	if (!protectable) {
		if (sf_ranges_live()) {
			sf_count(SF_C_FALLBACKS, 1);
			sf_msg_once(&once_own_stack, "a raw clone with a stack of its own (called from %p) cannot be "
				    "protected: its child runs no code of ours; registered ranges stay copy-on-write "
				    "for it", caller);
			sf_report_unprotected(SAFEFORK_ENTRY_SYSCALL, caller);
		}
		return SF_REAL(syscall)(nr, a1, a2, a3, a4, a5, a6);
	}
	int active = sf_engine_prepare(SAFEFORK_ENTRY_SYSCALL, caller);
	long r = SF_REAL(syscall)(nr, a1, a2, a3, a4, a5, a6);
	if (r == 0)
		sf_engine_child();
	else if (active)
		sf_engine_parent(r < 0 ? -1 : (pid_t)r);
	return r;
}
