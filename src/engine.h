/*
 * engine.h - the one place a fork is made safe.  Every wrapper (fork, _Fork,
 * clone, the atfork net, ...) only calls these three with its context.
 */
#ifndef SF_ENGINE_H
#define SF_ENGINE_H

#include <sys/types.h>

#include "safefork.h"

/*
 * Just before the address space is duplicated; entry names the fork entry
 * point, caller is its return address.  Returns 1 when the fork is being
 * protected (parent/child must follow on this thread), 0 when there is
 * nothing to do.
 */
int sf_engine_prepare(enum safefork_entry entry, void *caller);
/* The library's own kernel probe (a raw clone): not counted as the program's fork. */
#define SF_ENTRY_PROBE ((enum safefork_entry)(SAFEFORK_ENTRY_MAX - 1))
/* "fork", "system", ... for messages. */
const char *sf_entry_name(enum safefork_entry e);
/*
 * In the parent after the fork; pid < 0 when it failed.  The atfork net
 * cannot see the result and passes SF_PID_UNKNOWN: a failed fork then only
 * costs a fresh staging pool next time.
 */
void sf_engine_parent(pid_t pid);
#define SF_PID_UNKNOWN 0x7fffffff
/* In the child, before any of the program's own code runs. */
void sf_engine_child(void);
/* A wrapper learnt after the atfork parent handler that the fork failed. */
void sf_engine_fork_failed(void);
/* Outside the fork path: scratch memory for a fork plan over nranges ranges (0 or -ENOMEM). */
int sf_engine_reserve(size_t nranges);
/* Once, at initialisation. */
void sf_engine_init(void);

#endif
