/* unshare.h - before a registration pins memory: every page exclusively ours (see unshare.c). */
#ifndef SF_UNSHARE_H
#define SF_UNSHARE_H

#include <stddef.h>

/* Per the mode: copy, dontfork, wipe always; auto on kernels before 5.19; log and off never. */
void sf_unshare_before_pin(const void *addr, size_t len);

#endif
