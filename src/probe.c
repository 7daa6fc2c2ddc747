/*
 * probe.c - what the running kernel does with pinned pages at fork, found
 * by trying it, for "auto".
 *
 * Distribution kernels backport, so the version number is only the fallback.
 * The probe pins one page the way devices do (an io_uring fixed buffer:
 * pin_user_pages with FOLL_WRITE|FOLL_LONGTERM), forks a throw-away child
 * with a raw clone (no atfork handlers, no SIGCHLD to the program), and
 * reads /proc/self/pagemap: as root the child's PFN against the parent's,
 * otherwise the parent's "exclusively mapped" bit (56) while the child is
 * alive.  Early COW (5.9+) leaves the parent's pinned page exclusive.  The
 * same with a hugetlb page when one is free (hugetlb early COW: 5.12+).
 * Reliable pins (5.19+: a read-only pin of a page still shared with a child
 * unshares it) cannot be observed without a read-only long-term pin, which
 * io_uring does not take; that one comes from the version.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_LINUX_IO_URING_H
#include <linux/io_uring.h>
#endif

#include "common.h"
#include "engine.h"
#include "lock.h"
#include "msg.h"
#include "probe.h"
#include "sysmem.h"

static struct sf_kernel kern;
static int probed; /* sf_once state: 0 not yet, 1 running, 2 done */
static int reported;

/* The running kernel's major * 65536 + minor, read once (sf_kernel() runs on every verbs registration). */
static int release_code = -1;

static int version_at_least(int maj, int min)
{
	int code = __atomic_load_n(&release_code, __ATOMIC_RELAXED);

	if (code < 0) {
		struct utsname u;
		int a = 0, b = 0;
		const char *p;

		if (uname(&u) < 0)
			return 0;
		p = u.release;
		while (*p >= '0' && *p <= '9' && a < 10000)
			a = a * 10 + (*p++ - '0');
		if (*p == '.')
			p++;
		while (*p >= '0' && *p <= '9' && b < 10000)
			b = b * 10 + (*p++ - '0');
		code = a * 65536 + (b < 65535 ? b : 65535);
		__atomic_store_n(&release_code, code, __ATOMIC_RELAXED);
	}
	return code >= maj * 65536 + min;
}

/* pagemap entry of addr in this process; 0 on failure. */
static uint64_t pagemap(const void *addr)
{
	uint64_t e = 0;
	long fd = sf_syscall(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (sf_syscall(SYS_pread64, fd, &e, sizeof(e), (off_t)((uintptr_t)addr / sf_page_size * sizeof(e))) != sizeof(e))
		e = 0;
	sf_syscall(SYS_close, fd);
	return e;
}

#define PM_PRESENT (1ull << 63)
#define PM_EXCLUSIVE (1ull << 56)
#define PM_PFN(e) ((e) & ((1ull << 55) - 1))

#ifdef HAVE_LINUX_IO_URING_H
/*
 * Does fork copy a pinned page of this kind for the child?  Runs in a
 * throw-away child of the program (see probe_one): returns 1/0, or -1 when
 * the probe cannot run (reason in *why).
 */
static int probe_here(int huge, const char **why, int *by_pfn)
{
	size_t len = huge ? 2ul << 20 : sf_page_size;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | (huge ? MAP_HUGETLB : 0);
	struct io_uring_params params;
	int ring, rc = -1, sync[2] = { -1, -1 }, hold[2] = { -1, -1 };
	char *p;

	p = sf_mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED) {
		*why = huge ? "no free huge page" : "mmap failed";
		return -1;
	}
	memset(p, 0x5a, len);
	memset(&params, 0, sizeof(params));
	ring = (int)sf_syscall(__NR_io_uring_setup, 1, &params);
	if (ring < 0) {
		*why = errno == ENOSYS ? "io_uring not in this kernel"
			: errno == EPERM ? "io_uring disabled (sysctl kernel.io_uring_disabled or seccomp)"
					 : "io_uring_setup failed";
		return -1;
	}
	struct iovec iov = { p, len };
	if (sf_syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1) < 0) {
		*why = errno == ENOMEM ? "cannot pin (RLIMIT_MEMLOCK)" : "io_uring buffer registration failed";
		return -1;
	}
	uint64_t before = pagemap(p);
	if (!(before & PM_PRESENT)) {
		*why = "/proc/self/pagemap unreadable";
		return -1;
	}
	*by_pfn = PM_PFN(before) != 0;
	if (pipe2(sync, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0) {
		*why = "no descriptors";
		return -1;
	}
	long pid = sf_syscall(SYS_clone, 0 /* exit signal none */, 0, 0, 0, 0);
	if (pid == 0) {
		uint64_t mine = pagemap(p);
		char c;
		if (sf_syscall(SYS_write, sync[1], &mine, sizeof(mine)) != sizeof(mine))
			sf_syscall(SYS_exit_group, 1);
		sf_syscall(SYS_close, hold[1]);
		sf_syscall(SYS_read, hold[0], &c, 1); /* stay alive (mapping the page) until the prober has looked */
		sf_syscall(SYS_exit_group, 0);
	}
	if (pid < 0) {
		*why = "clone failed";
		return -1;
	}
	/* Only the grandchild writes sync and reads hold: one that dies reads as EOF here. */
	sf_syscall(SYS_close, sync[1]);
	sf_syscall(SYS_close, hold[0]);
	uint64_t child = 0;
	if (sf_syscall(SYS_read, sync[0], &child, sizeof(child)) == sizeof(child)) {
		uint64_t parent = pagemap(p);
		if (*by_pfn)
			rc = PM_PFN(child) != 0 && PM_PFN(child) != PM_PFN(parent);
		else
			rc = (parent & PM_EXCLUSIVE) != 0;
	} else {
		*why = "probe child failed";
	}
	return rc; /* the prober exits: its ring, pipes and grandchild go with it */
}

/*
 * The probe runs in a throw-away child (a raw clone: no atfork handlers,
 * exit signal 0 so the program's SIGCHLD handling never sees it), never in
 * the program itself: tearing down an io_uring instance interrupts the
 * blocking system call its creator is in a few milliseconds later (a pipe
 * write returns short, epoll_wait fails with EINTR), which a program that
 * only registered a buffer must never see.  The clone is still a fork of the
 * whole program, so the engine protects the registered ranges around it:
 * the probe must not cause the corruption it looks for.
 */
struct probe_result {
	int rc, by_pfn;
	const char *why; /* a string of this library: same address in the prober */
};

static int probe_one(int huge, const char **why, int *by_pfn)
{
	struct probe_result res = { -1, 0, "no descriptors" };
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0) {
		*why = res.why;
		return -1;
	}
	int active = sf_engine_prepare(SF_ENTRY_PROBE, NULL);
	long pid = sf_syscall(SYS_clone, 0 /* exit signal none */, 0, 0, 0, 0);
	if (pid == 0) {
		/* The prober: a copy of the program whose memory it never touches. */
		res.why = "probe failed";
		res.rc = probe_here(huge, &res.why, &res.by_pfn);
		sf_syscall(SYS_write, fds[1], &res, sizeof(res));
		sf_syscall(SYS_exit_group, 0);
	}
	if (active) /* as for a failed fork: the prober never takes the staging */
		sf_engine_parent(-1);
	sf_close(fds[1]);
	if (pid < 0) {
		res.why = "clone failed";
	} else {
		long n;
		while ((n = sf_syscall(SYS_read, fds[0], &res, sizeof(res))) < 0 && errno == EINTR)
			;
		if (n != (long)sizeof(res))
			res = (struct probe_result){ -1, 0, "the prober died" };
		while (sf_syscall(SYS_wait4, pid, NULL, __WCLONE, NULL) < 0 && errno == EINTR)
			;
	}
	sf_close(fds[0]);
	*why = res.why;
	*by_pfn = res.by_pfn;
	return res.rc;
}
#endif

static void run_probe(void)
{
	const char *why = "built without linux/io_uring.h";
	int by_pfn = 0, r;

	kern.reliable_pins = version_at_least(5, 19);
#ifdef HAVE_LINUX_IO_URING_H
	r = probe_one(0, &why, &by_pfn);
#else
	r = -1;
#endif
	if (r >= 0) {
		kern.early_cow = r;
		kern.early_cow_how = by_pfn ? "probe: io_uring-pinned page, PFNs" : "probe: io_uring-pinned page, "
										    "pagemap exclusive bit";
	} else {
		kern.early_cow = version_at_least(5, 9);
		kern.early_cow_how = "kernel version (probe could not run)";
		kern.probe_failed = why;
	}
	r = -1;
	why = "no io_uring";
#ifdef HAVE_LINUX_IO_URING_H
	if (kern.early_cow)
		r = probe_one(1, &why, &by_pfn);
#endif
	if (r >= 0) {
		kern.hugetlb_early_cow = r;
		kern.hugetlb_how = "probe: io_uring-pinned hugetlb page";
	} else {
		kern.hugetlb_early_cow = kern.early_cow && version_at_least(5, 12);
		kern.hugetlb_how = kern.early_cow ? "kernel version (no hugetlb probe: free huge page needed)"
						  : "no early COW at all";
	}
}

static void probe_once(void)
{
	int saved = errno;
	run_probe();
	errno = saved;
}

void sf_probe_ensure(void)
{
	sf_once(&probed, probe_once);
	/* after the findings are published: the report reads them through sf_kernel() */
	if (sf_debug && !__atomic_load_n(&reported, __ATOMIC_RELAXED) && !__atomic_exchange_n(&reported, 1, __ATOMIC_RELAXED))
		sf_probe_report();
}

const struct sf_kernel *sf_kernel(void)
{
	if (__atomic_load_n(&probed, __ATOMIC_ACQUIRE) == 2)
		return &kern;
	/* Not probed yet (the fork path never forks a probe): the version says. */
	static struct sf_kernel by_version;
	by_version.early_cow = version_at_least(5, 9);
	by_version.hugetlb_early_cow = version_at_least(5, 12);
	by_version.reliable_pins = version_at_least(5, 19);
	by_version.early_cow_how = by_version.hugetlb_how = "kernel version (not probed yet)";
	return &by_version;
}

int sf_auto_policy(unsigned flags)
{
	const struct sf_kernel *k = sf_kernel();

	/* Only kernel pins get the kernel's protection; without early COW everything needs ours.
	 * hugetlb is not told apart here: without hugetlb early COW all kernel pins are copied. */
	if (!(flags & SAFEFORK_KERNEL_PIN))
		return 1;
	return !(k->early_cow && k->hugetlb_early_cow);
}

void sf_probe_report(void)
{
	const struct sf_kernel *k = sf_kernel();
	struct utsname u;

	if (uname(&u) < 0)
		strcpy(u.release, "?");
	sf_msg("kernel %s: early COW of pinned pages at fork: %s (%s)%s%s", u.release, k->early_cow ? "yes" : "NO",
	       k->early_cow_how, k->probe_failed ? "; probe: " : "", k->probe_failed ? k->probe_failed : "");
	sf_msg("kernel %s: hugetlb early COW: %s (%s); reliable pins of shared pages: %s (kernel version >= 5.19)",
	       u.release, k->hugetlb_early_cow ? "yes" : "NO", k->hugetlb_how, k->reliable_pins ? "yes" : "NO");
	sf_msg("mode %s: explicit ranges: %s; kernel-pinned ranges (verbs, io_uring, SAFEFORK_KERNEL_PIN): %s",
	       sf_mode_name(sf_mode),
	       sf_mode == SAFEFORK_MODE_AUTO ? "copy" : sf_mode_name(sf_mode),
	       sf_mode != SAFEFORK_MODE_AUTO ? sf_mode_name(sf_mode)
	       : sf_auto_policy(SAFEFORK_KERNEL_PIN) ? "copy (the kernel does not protect them all)"
						     : "left to the kernel");
}

/* safefork_probe(): the findings for programs and the safefork launcher (--probe). */
SF_EXPORT int safefork_probe(struct safefork_kernel *out, size_t size)
{
	struct safefork_kernel k;

	if (!out || !size) {
		errno = EINVAL;
		return -1;
	}
	sf_init();
	sf_probe_ensure();
	const struct sf_kernel *kk = sf_kernel();
	enum safefork_mode m = __atomic_load_n(&sf_mode, __ATOMIC_RELAXED);

	memset(&k, 0, sizeof(k));
	k.early_cow = kk->early_cow;
	k.hugetlb_early_cow = kk->hugetlb_early_cow;
	k.reliable_pins = kk->reliable_pins;
	k.probed = !kk->probe_failed;
	k.early_cow_how = kk->early_cow_how;
	k.hugetlb_how = kk->hugetlb_how;
	k.probe_failed = kk->probe_failed;
	k.mode = m;
	k.explicit_policy = k.kernel_pin_policy = m;
	if (m == SAFEFORK_MODE_AUTO) {
		k.explicit_policy = sf_auto_policy(0) ? SAFEFORK_MODE_COPY : SAFEFORK_MODE_OFF;
		k.kernel_pin_policy = sf_auto_policy(SAFEFORK_KERNEL_PIN) ? SAFEFORK_MODE_COPY : SAFEFORK_MODE_OFF;
	}
	memcpy(out, &k, size < sizeof(k) ? size : sizeof(k));
	return 0;
}
