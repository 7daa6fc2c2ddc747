/* sysmem.h - the library's own memory (no malloc anywhere in the library). */
#ifndef SF_SYSMEM_H
#define SF_SYSMEM_H

#include <stddef.h>

/* Private, zeroed, never merged with the program's mappings; NULL when the kernel says no. */
void *sf_map(size_t len);

#endif
