/*
 * patched-madvise: a run-time code patcher hooking madvise() (as UCX's
 * memory hooks in bistro mode and Open MPI's patcher do, to invalidate
 * their registration caches) still sees every madvise() of the program,
 * and the library still sees the program's fork advice.
 *
 * Two patchers, as with Open MPI's pml ucx: the first (UCX) overwrites the
 * entry of the function dlsym(RTLD_DEFAULT, "madvise") finds, the second
 * (Open MPI) the C library's madvise; each hook issues the system call
 * itself.  Without the library both patch the C library's function and the
 * second one sees the program's calls.  Had dlsym found the library's
 * wrapper, the first patcher would have overwritten it and the program's
 * calls would reach neither the wrapper nor the second patcher (Open MPI's
 * registration cache would miss MADV_DONTNEED: tests/runtimes, pml ucx).
 * Run without the library, with it off and in copy mode: the second
 * patcher sees the program's MADV_DONTNEED in each, and the program's
 * MADV_DONTFORK on a registered range survives a fork.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"
#include "pintest.h"

#if defined(__x86_64__)
/* Calls each patcher's hook saw. */
static volatile int seen_first, seen_libc;

static int to_kernel(void *addr, size_t len, int advice)
{
	long r;

	/* The patched function's body is gone: straight to the kernel, as both patchers' hooks do. */
	__asm__ volatile("syscall" : "=a"(r) : "a"((long)SYS_madvise), "D"(addr), "S"(len), "d"((long)advice)
			 : "rcx", "r11", "memory");
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return 0;
}

static int hook_first(void *addr, size_t len, int advice)
{
	seen_first++;
	return to_kernel(addr, len, advice);
}

static int hook_libc(void *addr, size_t len, int advice)
{
	seen_libc++;
	return to_kernel(addr, len, advice);
}

/* Overwrite fn's entry with movabs $to, %r11; jmp *%r11 (13 bytes), as Open MPI's patcher does. */
static void patch(void *fn, void *to)
{
	long ps = sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)fn & ~(uintptr_t)(ps - 1);
	unsigned char code[13] = { 0x49, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0x41, 0xff, 0xe3 };

	memcpy(code + 2, &to, 8);
	T_CHECK(mprotect((void *)a, 2 * (size_t)ps, PROT_READ | PROT_WRITE | PROT_EXEC) == 0, "mprotect: %s",
		strerror(errno));
	memcpy(fn, code, sizeof(code));
	T_CHECK(mprotect((void *)a, 2 * (size_t)ps, PROT_READ | PROT_EXEC) == 0, "mprotect");
}

static int role(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	void *first = dlsym(RTLD_DEFAULT, "madvise"), *in_libc = libc ? dlsym(libc, "madvise") : NULL;

	T_CHECK(first && in_libc, "madvise not found");
	/* UCX's hooks first (the function dlsym finds), then Open MPI's (the C library's). */
	patch(first, (void *)hook_first);
	patch(in_libc, (void *)hook_libc);

	/* The program's MADV_DONTNEED reaches the C library's patcher, as it does without the library. */
	char *scratch = t_map(16 * (size_t)ps);
	memset(scratch, 1, 16 * (size_t)ps);
	seen_first = seen_libc = 0;
	T_CHECK(madvise(scratch, 16 * (size_t)ps, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED): %s", strerror(errno));
	T_CHECK(scratch[0] == 0, "MADV_DONTNEED did not reach the kernel");
	T_CHECK(seen_libc == 1, "the C library's patcher saw %d of the program's 1 madvise(MADV_DONTNEED) (the "
		"first patcher saw %d)", seen_libc, seen_first);

	/* The program's MADV_DONTFORK on a registered range: kept across a fork. */
	char *buf = t_map(8 * (size_t)ps);
	t_fill(buf, 8 * (size_t)ps, 1);
	T_CHECK(t_register(buf, 8 * (size_t)ps, 0) == 0, "register");
	T_CHECK(madvise(buf + 4 * ps, 4 * (size_t)ps, MADV_DONTFORK) == 0, "madvise(MADV_DONTFORK)");
	p_fork_protected_iff_copying("the registered range");
	T_CHECK(t_vmflag(buf + 4 * ps, "dc") == 1, "after a fork: the program's MADV_DONTFORK is gone");
	T_CHECK(t_vmflag(buf, "dc") == 0, "after a fork: the library's own MADV_DONTFORK was left behind");
	T_CHECK(t_unregister(buf, 8 * (size_t)ps) == 0, "unregister");
	t_note("the C library's patcher saw the program's madvise; the program's MADV_DONTFORK kept");
	return 0;
}
#endif

int main(int argc, char **argv)
{
#if !defined(__x86_64__)
	(void)argc;
	(void)argv;
	t_skip("the code patcher here is written for x86-64");
#else
	if (argc > 1)
		return role();
	p_run_with_controls(argv[0], "patch", "copy", NULL);
	t_pass("two code patchers on madvise (dlsym's, then the C library's): the second sees the program's calls, "
	       "with and without the library");
#endif
}
