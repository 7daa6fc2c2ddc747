/* sysmem.c - the library's own memory, straight from the kernel. */
#include "config.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "sysmem.h"

void *sf_map(size_t len)
{
	void *p = sf_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

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

int sf_peek(void *dst, const void *src, size_t len)
{
	struct iovec local = { dst, len };
	struct iovec remote = { (void *)(uintptr_t)src, len };

	if (!src)
		return -1;
	if (!len)
		return 0;
	int saved = errno;
	long n = sf_syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0);
	int e = errno;
	errno = saved;
	if (n == (long)len)
		return 0;
	if (n >= 0 || e == EFAULT)
		return -1;
	/* process_vm_readv refused (seccomp, old kernel): the pointer is the program's to vouch for. */
	memcpy(dst, src, len);
	return 0;
}
