/*
 * callstack.h - the call chain of a fork: raw return addresses captured in
 * the fork path, named after the fork in the parent.
 *
 * With libunwind (found at build time, loaded at run time with
 * RTLD_LOCAL, only when reports are on: see callstack.c) the whole chain;
 * otherwise the fork entry point's immediate caller only.
 */
#ifndef SF_CALLSTACK_H
#define SF_CALLSTACK_H

#include <stddef.h>

#define SF_STACK_MAX 48

/* Outside the fork path, once reports are on: load the unwinder.  1 when whole chains are available. */
int sf_stack_load(void);
/* Loaded already?  (Never loads: usable anywhere.) */
int sf_stack_loaded(void);
/* "libunwind" or why only the immediate caller is named, for messages and the JSON "unwinder" field. */
const char *sf_stack_method(void);
/*
 * Up to max return addresses, innermost first, into preallocated memory.
 * No malloc, no lock a fork could be waiting on (libunwind's own locks are
 * taken with every signal blocked).  0 when there is no unwinder.
 */
int sf_stack_capture(void **frames, int max);

struct sf_frame_name {
	const char *object;    /* path of the object holding the address, or NULL */
	void *base;            /* its load address */
	char symbol[160];      /* "" when none is known */
	unsigned long offset;  /* from the symbol, else from base */
};
/* Name a return address (after the fork, in the parent: may take the loader's lock). */
void sf_stack_name(void *ip, struct sf_frame_name *out);
/* Is ip inside this library? (after the fork) */
int sf_stack_ours(void *ip);

#endif
