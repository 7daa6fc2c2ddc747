/* sysmem.h - the library's own memory (no malloc anywhere in the library). */
#ifndef SF_SYSMEM_H
#define SF_SYSMEM_H

#include <stddef.h>

#include <sys/syscall.h>
#include <unistd.h>

#include <errno.h>

/*
 * The library's own system calls: straight to the kernel, never through its
 * own syscall() wrapper (which would take the fork path for a clone and
 * record io_uring registrations).  Same convention as syscall(): -1 and
 * errno on failure.  sf_syscall(nr, args...) takes up to six arguments.
 */
#if defined(__x86_64__)
static inline long sf_syscall6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	if ((unsigned long)ret > -4096ul) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}
#else
/* syscall() is interposed only on x86-64. */
#define sf_syscall6(n, a, b, c, d, e, f) syscall(n, a, b, c, d, e, f)
#endif
#define SF_SYSCALL_PAD(n, a, b, c, d, e, f, ...) \
	sf_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))
#define sf_syscall(...) SF_SYSCALL_PAD(__VA_ARGS__, 0, 0, 0, 0, 0, 0, 0)

/*
 * madvise() for the library's own use: straight to the kernel, so that the
 * library's advice never reaches its own madvise() wrapper (which records
 * the program's).
 */
static inline int sf_madvise(void *addr, size_t len, int advice)
{
	return (int)sf_syscall(SYS_madvise, addr, len, advice);
}

/*
 * close() for the library's own descriptors: straight to the kernel, past
 * the library's close() wrapper (which watches for io_uring rings).
 */
static inline int sf_close(int fd)
{
	return (int)sf_syscall(SYS_close, fd);
}

/*
 * mmap(), munmap(), mprotect() for the library's own use: straight to the
 * kernel.  Run-time patchers (Open MPI's memory patcher, UCX's hooks)
 * rewrite libc's entry points with hooks that take locks; in a fork child
 * such a lock may be held forever by a parent thread that no longer exists.
 */
static inline void *sf_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
	return (void *)sf_syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static inline int sf_munmap(void *addr, size_t len)
{
	return (int)sf_syscall(SYS_munmap, addr, len);
}

static inline int sf_mprotect(void *addr, size_t len, int prot)
{
	return (int)sf_syscall(SYS_mprotect, addr, len, prot);
}

/* Private, zeroed, never merged with the program's mappings; NULL when the kernel says no. */
void *sf_map(size_t len);

/*
 * Copy len bytes of the program's memory at src into dst without faulting
 * on a bad pointer: 0, or -1 when it is not readable.  errno is kept.
 */
int sf_peek(void *dst, const void *src, size_t len);

#endif
