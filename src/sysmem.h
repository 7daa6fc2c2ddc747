/* sysmem.h - the library's own memory (no malloc anywhere in the library). */
#ifndef SF_SYSMEM_H
#define SF_SYSMEM_H

#include <stddef.h>

#include <sys/syscall.h>
#include <unistd.h>

/*
 * madvise() for the library's own use: straight to the kernel, so that the
 * library's advice never reaches its own madvise() wrapper (which records
 * the program's).
 */
static inline int sf_madvise(void *addr, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, addr, len, advice);
}

/* Private, zeroed, never merged with the program's mappings; NULL when the kernel says no. */
void *sf_map(size_t len);

#endif
