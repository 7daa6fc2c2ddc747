/* vmamap.h - read the process's mappings from /proc/self/maps without malloc or stdio. */
#ifndef SF_VMAMAP_H
#define SF_VMAMAP_H

#include <stddef.h>
#include <stdint.h>

struct sf_vma {
	uintptr_t start, end;
	int prot;         /* PROT_* */
	int shared;       /* 's' in the permissions: no copy-on-write, nothing to protect */
	int anon;         /* no backing file: private anonymous, heap, stack, [anon:*] */
	int hugetlb_anon; /* MAP_HUGETLB ("/anon_hugepage") */
};

/*
 * Calls cb for each mapping in address order until cb returns non-zero.
 * Uses one transient O_CLOEXEC descriptor, closed before returning.
 * Returns 0, or a negative errno when the file cannot be read (EMFILE, no /proc).
 */
int sf_maps_foreach(int (*cb)(const struct sf_vma *vma, void *arg), void *arg);
/* The same with the caller's buffer (sf_maps_foreach's own is the fork path's, under the engine lock). */
int sf_maps_foreach_in(char *buf, size_t size, int (*cb)(const struct sf_vma *vma, void *arg), void *arg);

#endif
