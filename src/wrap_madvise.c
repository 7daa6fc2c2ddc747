/*
 * wrap_madvise.c - the program's own fork advice (MADV_DONTFORK/DOFORK,
 * MADV_WIPEONFORK/KEEPONFORK) is recorded so that the engine, which applies
 * and undoes fork advice around every fork, leaves it as the program set it.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "advice.h"
#include "common.h"
#include "interpose.h"

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#define MADV_KEEPONFORK 19
#endif

SF_EXPORT int madvise(void *addr, size_t len, int advice)
{
	int rc = SF_REAL(madvise)(addr, len, advice);

	if (rc == 0 && len && (advice == MADV_DONTFORK || advice == MADV_DOFORK || advice == MADV_WIPEONFORK ||
			       advice == MADV_KEEPONFORK)) {
		int saved = errno;
		sf_advice_note((uintptr_t)addr, sf_align_up((uintptr_t)addr + len, sf_page_size), advice);
		errno = saved;
	}
	return rc;
}
