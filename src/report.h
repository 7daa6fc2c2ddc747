/*
 * report.h - once-per-call-site reports of the forks that happen while
 * ranges are registered: a headline (pid, entry point, mode, ranges and
 * bytes, the kernel's verdict) and the call chain, deepest frame first.
 *
 * When: in log mode (and for ranges registered SAFEFORK_LOGONLY) always; in
 * the protective modes only when asked (SAFEFORK_REPORT=1, or SAFEFORK_LOG
 * set), except that a fork whose protection had to degrade is always
 * reported.  Deduplicated by entry point and return-address chain.
 *
 * The engine calls begin/range/fallback/end inside the fork path, under its
 * lock (they only count and capture raw addresses into preallocated
 * memory), and emit after the fork in the parent with no lock held (naming
 * the frames may take the loader's lock).
 */
#ifndef SF_REPORT_H
#define SF_REPORT_H

#include <stddef.h>

#include "callstack.h"
#include "safefork.h"

/* What the engine does with a range at this fork. */
enum { SF_REP_LEFT = 0, SF_REP_LOGGED, SF_REP_PROTECTED };

struct sf_report {
	enum safefork_entry entry;
	enum safefork_mode mode;
	unsigned char kind, fallback, by_shim, captured;
	void *caller;
	size_t ranges, bytes;               /* registered at the fork */
	size_t logged, logged_bytes;        /* left copy-on-write, only reported */
	size_t logged_kpin, logged_kpin_bytes; /* of those, pinned through the kernel */
	size_t prot, prot_bytes;            /* protected by the library */
	size_t left, left_bytes;            /* left to the kernel (auto) or not pinned at all */
	size_t copied;                      /* bytes copied for the child */
	int nframes;
	void *frames[SF_STACK_MAX];
};

/* At initialisation (environment) and when the mode changes: outside the fork path. */
void sf_report_init(void);
void sf_report_ready(void); /* when the mode changes */
/* Reports for every fork with registered ranges: log mode, or asked for. */
int sf_report_wanted(void);

/* In the fork path, under the engine lock. */
void sf_report_begin(enum safefork_entry entry, void *caller);
void sf_report_range(unsigned int flags, int what, size_t len);
void sf_report_fallback(void);
/* Copy this fork's report into *out; 1 when one is due. */
int sf_report_end(struct sf_report *out, size_t copied);

/* After the fork, in the parent, no lock held: report it unless this call site was reported. */
void sf_report_emit(struct sf_report *r);

/* Children that share the address space until exec (system, popen, posix_spawn): outside any fork path. */
void sf_report_spawn(enum safefork_entry entry, void *caller, int by_shim);
/* A fork that cannot be protected at all (a raw clone with a stack of its own): always reported. */
void sf_report_unprotected(enum safefork_entry entry, void *caller);

#endif
