/* ranges.h - the table of registered (pinned) ranges. */
#ifndef SF_RANGES_H
#define SF_RANGES_H

#include <stddef.h>
#include <stdint.h>

/* Where a range was learned from (for statistics and reports). */
enum sf_source {
	SF_SRC_EXPLICIT = 0, /* safefork_register() */
	SF_SRC_VERBS,        /* ibv_reg_mr family */
	SF_SRC_PROVIDER,     /* ibv_dontfork_range from a provider's queue buffers */
	SF_SRC_URING,        /* io_uring registrations */
	SF_SRC_NR
};

/* One registration as the fork path sees it: [start, end) in bytes, exact. */
struct sf_range_view {
	uintptr_t start, end;
	unsigned int flags;  /* safefork.h flag bits */
	unsigned int source; /* enum sf_source */
};

/*
 * Flag bit beside the safefork.h ones, for ranges the wrappers learn:
 * registered with a device but not pinned (ODP, dma-buf).  Recorded so the
 * statistics show them; never protected or reported at fork (the device
 * follows the process's page tables, or the memory is not the process's).
 */
#define SF_RANGE_NOPIN 0x10000u

/*
 * Returns 0 or a negative errno (-ENOMEM when the table cannot grow).
 * add and both dels return -EDEADLK when called from a signal handler that
 * interrupted a writer on the same thread (writers do not block signals).
 */
int sf_ranges_add(uintptr_t start, uintptr_t end, unsigned int flags, unsigned int source);
/* Returns 0 or -ENOENT. */
int sf_ranges_del(uintptr_t start, uintptr_t end);
/* Only a registration with exactly these flags and source; 0 or -ENOENT. */
int sf_ranges_del_exact(uintptr_t start, uintptr_t end, unsigned int flags, unsigned int source);

/*
 * Copy the live registrations into out[0..cap).  Lock-free and
 * async-signal-safe: usable from the fork path, from a signal handler, and
 * while another thread (or the interrupted thread itself) is inside
 * sf_ranges_add/del; a registration whose add or del is still in progress
 * may or may not be included.  Returns the number of live registrations,
 * which may exceed cap (then call again with more room).
 */
size_t sf_ranges_snapshot(struct sf_range_view *out, size_t cap);

/* Live registrations now (a hint: exact only when no writer runs). */
size_t sf_ranges_live(void);
/* Per-source counts of live registrations and of their bytes. */
void sf_ranges_stats(size_t count[SF_SRC_NR], size_t bytes[SF_SRC_NR]);

/* Upper bound on live registrations (SAFEFORK_MAX_RANGES); 0 = none. */
void sf_ranges_set_cap(size_t cap);

/* In a child after fork: forget everything (the child's memory is not pinned). */
void sf_ranges_child_reset(void);

#endif
