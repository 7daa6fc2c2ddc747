/*
 * wrap_madvise.c - the program's own fork advice (MADV_DONTFORK/DOFORK,
 * MADV_WIPEONFORK/KEEPONFORK) is recorded so that the engine, which applies
 * and undoes fork advice around every fork, leaves it as the program set it.
 *
 * The wrapper is exported as madvise@<libc's version> with that version
 * hidden (non-default): every program and library calling madvise() binds
 * to it through its versioned reference, but an unversioned
 * dlsym(RTLD_DEFAULT, "madvise") skips it and finds the C library's.  That
 * is what run-time code patchers look up: UCX's memory hooks (bistro mode)
 * overwrite the entry of the function dlsym returns and then issue the
 * system call themselves, while Open MPI's patcher overwrites the C
 * library's.  Found by dlsym, this wrapper was overwritten: the program's
 * advice no longer reached us, and its madvise(MADV_DONTNEED) no longer
 * reached Open MPI's hook either (tests/runtimes, the pml ucx run).
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

__asm__(".symver sf_hidden_madvise, madvise@" SF_VER_madvise);
SF_EXPORT int sf_hidden_madvise(void *addr, size_t len, int advice)
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
