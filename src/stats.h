/*
 * stats.h - the counters behind safefork_stats().
 *
 * One array of 64-bit counters laid out as the head of struct
 * safefork_stats, bumped with relaxed atomics (the fork path takes no lock
 * for them).  The array lives in a MAP_SHARED page: fork write-protects
 * every private page, so a counter in private memory would cost the parent
 * a page fault at each fork; a shared page is never write-protected.  Each
 * child swaps in a fresh page of its own before it counts anything (a child
 * whose start no code of ours sees would only add to its parent's numbers).
 * Plain macros in the first part, so the assembly wrappers can count too.
 */
#ifndef SF_STATS_H
#define SF_STATS_H

/* Indices: forks per entry point first (enum safefork_entry), then these. */
#define SF_C_ENTRIES 16
#define SF_C_SHARED (SF_C_ENTRIES + 0)
#define SF_C_PROTECTED (SF_C_ENTRIES + 1)
#define SF_C_LOGGED (SF_C_ENTRIES + 2)
#define SF_C_BYTES_COPIED (SF_C_ENTRIES + 3)
#define SF_C_FALLBACKS (SF_C_ENTRIES + 4)
#define SF_C_PREPARE_NS (SF_C_ENTRIES + 5)
#define SF_C_PARENT_NS (SF_C_ENTRIES + 6)
/* The counters above are the head of struct safefork_stats; those below are its later fields. */
#define SF_C_HEAD (SF_C_ENTRIES + 7)
#define SF_C_CHILD_NS (SF_C_ENTRIES + 7) /* added by each child to its parent's page before it takes its own */
#define SF_C_NR (SF_C_ENTRIES + 8)

#ifndef __ASSEMBLER__
#include "safefork.h"

extern unsigned long long *sf_counter;

static inline void sf_count(unsigned int idx, unsigned long long n)
{
	__atomic_fetch_add(&__atomic_load_n(&sf_counter, __ATOMIC_RELAXED)[idx], n, __ATOMIC_RELAXED);
}

/* A child came through this entry point (shared: it shares our address space). */
static inline void sf_count_fork(enum safefork_entry e, int shared)
{
	sf_count(e, 1);
	if (shared)
		sf_count(SF_C_SHARED, 1);
}

/* CLOCK_MONOTONIC in ns (vDSO: no syscall, async-signal-safe). */
unsigned long long sf_now_ns(void);
/* Once, at initialisation: move the counters to their shared page. */
void sf_stats_init(void);
/* In a child: a page of its own, counting from zero. */
void sf_stats_child_reset(void);
#endif

#endif
