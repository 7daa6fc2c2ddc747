/*
 * lock.h - a small futex mutex.  The library's own, so that the child of a
 * fork can simply reset it (the holder may be a thread that does not exist
 * in the child) and so that nothing here depends on libpthread state.
 */
#ifndef SF_LOCK_H
#define SF_LOCK_H

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "sysmem.h"

#if defined(__x86_64__) || defined(__i386__)
#define sf_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define sf_cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define sf_cpu_relax() __asm__ __volatile__("" ::: "memory")
#endif

typedef struct {
	int v; /* 0 free, 1 held, 2 held with waiters */
} sf_lock_t;

#define SF_LOCK_INIT { 0 }

static inline void sf_futex(int *addr, int op, int val)
{
	sf_syscall(SYS_futex, addr, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

static inline int sf_trylock(sf_lock_t *l)
{
	int expect = 0;
	return __atomic_compare_exchange_n(&l->v, &expect, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline void sf_lock(sf_lock_t *l)
{
	for (int spin = 0; spin < 100; spin++) {
		if (sf_trylock(l))
			return;
		sf_cpu_relax();
	}
	while (__atomic_exchange_n(&l->v, 2, __ATOMIC_ACQUIRE) != 0)
		sf_futex(&l->v, FUTEX_WAIT, 2);
}

static inline void sf_unlock(sf_lock_t *l)
{
	if (__atomic_exchange_n(&l->v, 0, __ATOMIC_RELEASE) == 2)
		sf_futex(&l->v, FUTEX_WAKE, 1);
}

/* After fork, in the child: whoever held it is gone. */
static inline void sf_lock_reset(sf_lock_t *l)
{
	__atomic_store_n(&l->v, 0, __ATOMIC_RELAXED);
}

/*
 * Run fn once per state word (0 not yet, 1 running, 2 done); concurrent
 * callers wait until it is done.  Not for code that can re-enter itself.
 */
static inline void sf_once(int *state, void (*fn)(void))
{
	int expect = 0;

	if (__atomic_load_n(state, __ATOMIC_ACQUIRE) == 2)
		return;
	if (!__atomic_compare_exchange_n(state, &expect, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(state, __ATOMIC_ACQUIRE) != 2)
			sched_yield();
		return;
	}
	fn();
	__atomic_store_n(state, 2, __ATOMIC_RELEASE);
}

#endif
