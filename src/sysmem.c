/* sysmem.c - the library's own memory, straight from the kernel. */
#include "config.h"

#include <sys/mman.h>

#include "sysmem.h"

void *sf_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/*
	 * VM_DONTDUMP makes the mapping unmergeable with the program's: a fork
	 * plan that has to keep a whole mapping out of the child (no VMA split
	 * possible) never takes the library's own state with it.  It also keeps
	 * the tables out of core dumps.
	 */
	sf_madvise(p, len, MADV_DONTDUMP);
	return p;
}
