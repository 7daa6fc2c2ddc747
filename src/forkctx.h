/*
 * forkctx.h - naming the entry point of a fork that glibc's own fork
 * machinery performs (its atfork handlers run the engine), for reports and
 * counters.
 *
 * The context lives in the wrapper's stack frame; the thread-local pointer
 * to it is written only when it changes.  Writing thread-local memory after
 * every fork would cost the parent a page fault per fork (the fork has just
 * write-protected that page), which a fork with nothing registered must not
 * pay.  The prepare handler trusts the pointer only if it points just above
 * its own frame (the wrapper is a few frames up) and the frame still holds
 * the magic the wrapper clears on return.
 */
#ifndef SF_FORKCTX_H
#define SF_FORKCTX_H

#include "common.h"
#include "stats.h"

#define SF_CTX_MAGIC 0x5afef0c4c0de0001ull
struct sf_fork_ctx {
	volatile unsigned long long magic;
	enum safefork_entry entry;
	void *caller;
};
extern SF_TLS struct sf_fork_ctx *sf_t_ctx;

/* Register the engine's atfork handlers, once, before any other handler if we can. */
void sf_atfork_ensure(void);

/*
 * Evaluate call (which may fork through glibc) as entry point e called from
 * caller, counted once; shared: the child shares the address space (nothing
 * to copy).
 */
#define SF_VIA_GLIBC(e, shared, caller, call)                                                       \
	({                                                                                          \
		struct sf_fork_ctx ctx_ = { SF_CTX_MAGIC, (e), (caller) };                          \
		sf_atfork_ensure();                                                                 \
		sf_count_fork((e), (shared));                                                       \
		if (sf_t_ctx != &ctx_)                                                              \
			sf_t_ctx = &ctx_;                                                           \
		__typeof__(call) r_ = (call);                                                       \
		ctx_.magic = 0;                                                                     \
		r_;                                                                                 \
	})

#endif
