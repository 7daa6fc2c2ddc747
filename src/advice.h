/*
 * advice.h - MADV_DONTFORK / MADV_WIPEONFORK the program set itself.
 *
 * The engine applies and undoes fork advice around every fork; it must not
 * undo what the program asked for (OpenSSL's WIPEONFORK on its RNG state, a
 * runtime's own DONTFORK), nor fill a page the program wants wiped.  The
 * madvise() wrapper records the program's advice here.
 */
#ifndef SF_ADVICE_H
#define SF_ADVICE_H

#include <stdint.h>

enum { SF_MARK_DONTFORK = 0, SF_MARK_WIPE = 1 };

/* After the program's successful madvise(): record or forget its fork advice. */
void sf_advice_note(uintptr_t start, uintptr_t end, int advice);

/*
 * For each piece of [start, end) the program has not marked with kind, call
 * fn.  Used in the parent after the fork and in the child; async-signal-safe.
 */
void sf_advice_unmarked(uintptr_t start, uintptr_t end, int kind,
			void (*fn)(uintptr_t start, uintptr_t end, void *arg), void *arg);

#endif
