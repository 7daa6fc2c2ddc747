/*
 * fork_copy.c - what a fork costs the parent, and how long until the child
 * runs, when S bytes of memory are pinned for DMA, inside a process with
 * --other MiB (256) of other touched memory (4 KiB pages, like a heap):
 *
 *   plain     nothing registered (the buffer exists and is dirtied, that is
 *             all), library mode "off";
 *   off       the buffer registered, mode "off": the library must cost nothing;
 *   copy      the buffer registered with safefork_register(buf, S, 0) and the
 *             library in mode "copy" (userspace early COW through the staging
 *             pool);
 *   dontfork  registered, mode "dontfork" (the child has no buffer);
 *   wipe      registered, mode "wipe" (the child's buffer reads zeros);
 *   kernel    nothing registered with the library (mode "off"), the buffer
 *             registered as io_uring fixed buffers: the kernel pins it
 *             (FOLL_PIN) and, since Linux 5.9, copies the pinned pages for
 *             the child at fork, page by page (the kernel's early COW).
 *
 * plain, off, copy, dontfork and wipe are interleaved fork by fork (the
 * order rotates); kernel runs as a block of its own (pinning S bytes for
 * each of its forks would cost more than the forks).
 *
 * Memory of copy: before the first copy fork at each S, /proc/self/status's
 * peak RSS is reset (clear_refs 5); after it, peak minus the RSS outside the
 * staging pool before the fork is the peak extra memory, and the RSS of the
 * pool's mapping ([anon:safefork-staging]) after the child is gone is what
 * stays between forks (bounded by SAFEFORK_POOL_MAX, 1 GiB by default;
 * larger snapshots use one-shot staging, unmapped after the fork).
 *
 * The program is linked against libsafefork, so its fork() is the
 * library's wrapper; safefork_set_mode() switches between the
 * configurations within one process.
 *
 * Timing, per fork: parent latency is from just before fork() to its return
 * in the parent; child ready is from the same point to the first statement
 * of the child after fork() returned 0 (the child stores
 * clock_gettime(CLOCK_MONOTONIC) in a MAP_SHARED page and _exit(0)s).  The
 * parent waits for each child, then dirties every page of the buffer (8
 * bytes per page), then forks again.  Medians over --reps forks after
 * --warmup forks per configuration; the S=0 row uses --zero-reps forks and
 * interleaves plain and copy (off, copy, copy, off, ...) since it compares
 * two nearly equal, small numbers.
 *
 * After each measured block one extra fork checks the configuration does
 * what it claims: the parent writes a few pages right after the fork and
 * compares their physical frames (/proc/self/pagemap, root only); the child
 * checks it sees every page as of the fork.
 *
 * Targets are printed with the measured values, never asserted: exit 0
 * unless the benchmark itself cannot run.
 *
 * Usage: fork_copy [--sizes=0,4,64,512,2048] [--reps=20] [--zero-reps=200]
 *                  [--warmup=2] [--other=256] [--no-thp]
 * (sizes of 1 GiB and more use a quarter of --reps, at least 3)
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "safefork.h"

#if defined(HAVE_LIBURING)
#include <liburing.h>
#define HAVE_KRING 1
#define KRING_VIA "liburing"
#elif defined(HAVE_LINUX_IO_URING_H)
#include <linux/io_uring.h>
#include <sys/syscall.h>
#if defined(__NR_io_uring_setup) && defined(__NR_io_uring_register)
#define HAVE_KRING 1
#define KRING_VIA "raw io_uring_setup/io_uring_register syscalls"
#endif
#endif

#define MIB (1ul << 20)
#define HUGE_SZ (2ul << 20)
#define MAX_SIZES 16
#define IOV_MAX_LEN (1ul << 30) /* the kernel refuses larger fixed buffers */
#define NCHECK 3                /* pages the isolation check writes and tracks */

enum { C_PLAIN, C_OFF, C_COPY, C_DONTFORK, C_WIPE, C_KERNEL, NCFG };
static const char *const cfg_name[NCFG] = { "plain", "off", "copy", "dontfork", "wipe", "kernel" };
static const enum safefork_mode cfg_mode[NCFG] = { SAFEFORK_MODE_OFF,      SAFEFORK_MODE_OFF,  SAFEFORK_MODE_COPY,
						   SAFEFORK_MODE_DONTFORK, SAFEFORK_MODE_WIPE, SAFEFORK_MODE_OFF };
/* What the child finds in the buffer. */
enum { SEES_SNAPSHOT, SEES_ZEROS, SEES_NOTHING };
static const int cfg_child_sees[NCFG] = { SEES_SNAPSHOT, SEES_SNAPSHOT, SEES_SNAPSHOT,
					  SEES_NOTHING,  SEES_ZEROS,    SEES_SNAPSHOT };

static size_t page_size;
static int use_thp = 1;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "fork_copy: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ------------------------------------------------------------ statistics */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Quantile q (0..1) of v[0..n), by linear interpolation; sorts v. */
static double quantile(double *v, size_t n, double q)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	double pos = q * (double)(n - 1);
	size_t i = (size_t)pos;
	if (i + 1 >= n)
		return v[n - 1];
	return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

struct stats {
	double med, q1, q3; /* milliseconds */
	double faults;      /* parent's minor faults per fork, mean */
	size_t n;
};

static struct stats summarize(double *v, size_t n, long faults)
{
	struct stats s = { .n = n, .faults = n ? (double)faults / (double)n : 0 };

	s.med = quantile(v, n, 0.5);
	s.q1 = quantile(v, n, 0.25);
	s.q3 = quantile(v, n, 0.75);
	return s;
}

/* ------------------------------------------------------------ the machine */

static void read_line_of(const char *path, char *out, size_t outsz)
{
	FILE *f = fopen(path, "r");

	snprintf(out, outsz, "unknown");
	if (!f)
		return;
	if (fgets(out, (int)outsz, f))
		out[strcspn(out, "\n")] = 0;
	fclose(f);
}

static void cpu_model(char *out, size_t outsz)
{
	static const char *const keys[] = { "model name", "Hardware", "uarch", "cpu model", "cpu" };
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(out, outsz, "unknown");
	if (!f)
		return;
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		rewind(f);
		while (fgets(line, sizeof(line), f)) {
			size_t kl = strlen(keys[k]);
			char *colon = strchr(line, ':');
			if (!colon || strncmp(line, keys[k], kl) || (line[kl] != ' ' && line[kl] != '\t' && line[kl] != ':'))
				continue;
			colon++;
			colon += strspn(colon, " \t");
			colon[strcspn(colon, "\n")] = 0;
			snprintf(out, outsz, "%s", colon);
			fclose(f);
			return;
		}
	}
	fclose(f);
}

/* Where fork() resolves: the library's wrapper or the C library's own. */
static void fork_provider(char *out, size_t outsz, int *is_lib)
{
	Dl_info info;
	pid_t (*f)(void) = fork;
	void *addr;

	memcpy(&addr, &f, sizeof(addr));
	*is_lib = 0;
	if (!dladdr(addr, &info) || !info.dli_fname) {
		snprintf(out, outsz, "unknown");
		return;
	}
	snprintf(out, outsz, "%s", info.dli_fname);
	*is_lib = strstr(info.dli_fname, "libsafefork") != NULL;
}

/* ------------------------------------------------------------ memory */

/* S bytes at a 2 MiB boundary: mmap + trim, MADV_HUGEPAGE (or NOHUGEPAGE), filled. */
static char *buf_alloc(size_t len)
{
	size_t span = len + HUGE_SZ;
	char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (raw == MAP_FAILED)
		return NULL;
	char *base = (char *)(((uintptr_t)raw + HUGE_SZ - 1) & ~(uintptr_t)(HUGE_SZ - 1));
	if (base > raw)
		munmap(raw, (size_t)(base - raw));
	if (base + len < raw + span)
		munmap(base + len, (size_t)(raw + span - (base + len)));
	madvise(base, len, use_thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	memset(base, 0x5a, len);
	return base;
}

static uint64_t dirty_gen = 1;

/* Write 8 bytes at the start of every page; returns the value written. */
static uint64_t dirty(char *buf, size_t len)
{
	uint64_t g = ++dirty_gen;

	for (size_t off = 0; off < len; off += page_size)
		*(volatile uint64_t *)(buf + off) = g;
	return g;
}

/* AnonHugePages (kB) summed over the mappings overlapping [buf, buf+len); -1 if unknown. */
static long anon_huge_kb(const void *buf, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0;
	long total = -1;
	uintptr_t a = (uintptr_t)buf, b = a + len;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		uintptr_t s, e;
		long kb;
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = s < b && e > a;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			total = (total < 0 ? 0 : total) + kb;
	}
	fclose(f);
	return total;
}

static int pagemap_fd = -1;

/* Physical frame of the page at addr; 0 when absent or hidden (not root). */
static uint64_t pfn_of(const void *addr)
{
	uint64_t e;

	if (pagemap_fd < 0)
		return 0;
	if (pread(pagemap_fd, &e, sizeof(e), (off_t)((uintptr_t)addr / page_size * sizeof(e))) != (ssize_t)sizeof(e))
		return 0;
	if (!(e & (1ull << 63)))
		return 0;
	return e & ((1ull << 55) - 1);
}

/* A "Key:   N kB" line of /proc/self/status, in kB; -1 if absent. */
static long status_kb(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	size_t kl = strlen(key);

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':')
			kb = strtol(line + kl + 1, NULL, 10);
	fclose(f);
	return kb;
}

/*
 * Rss (kB) of the staging pool: the mappings named [anon:safefork-staging*],
 * or, on kernels without anonymous VMA names, the anonymous mappings both
 * MADV_HUGEPAGE and MADV_DONTFORK between forks (VmFlags hg and dc): in
 * this program only the pool is.
 */
static long staging_rss_kb(void)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int named = 0;
	long total = 0, kb, rss = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		uintptr_t a, b;
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			named = strstr(line, "[anon:safefork-staging") != NULL;
			rss = 0;
			continue;
		}
		if (sscanf(line, "Rss: %ld kB", &kb) == 1)
			rss = kb;
		if (!strncmp(line, "VmFlags:", 8) &&
		    (named || (strstr(line, " hg") && strstr(line, " dc") && !strstr(line, " nh"))))
			total += rss;
	}
	fclose(f);
	return total;
}

/* Reset the peak RSS (VmHWM) to the current RSS; 0 or -1. */
static int reset_peak(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	int ok = fd >= 0 && write(fd, "5", 1) == 1;

	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* ------------------------------------------------------------ io_uring */

#ifdef HAVE_KRING
struct kring {
#ifdef HAVE_LIBURING
	struct io_uring ring;
#else
	int fd;
#endif
	int registered;
};

/* 0 or a negative errno. */
static int kring_open(struct kring *k)
{
	memset(k, 0, sizeof(*k));
#ifdef HAVE_LIBURING
	return io_uring_queue_init(4, &k->ring, 0);
#else
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	k->fd = (int)syscall(__NR_io_uring_setup, 4u, &p);
	return k->fd < 0 ? -errno : 0;
#endif
}

/* Register [buf, buf+len) as fixed buffers of at most 1 GiB each; 0 or a negative errno. */
static int kring_register(struct kring *k, char *buf, size_t len)
{
	size_t n = (len + IOV_MAX_LEN - 1) / IOV_MAX_LEN;
	struct iovec iov[64];
	int rc;

	if (n > sizeof(iov) / sizeof(iov[0]))
		return -E2BIG;
	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = buf + i * IOV_MAX_LEN;
		iov[i].iov_len = len - i * IOV_MAX_LEN < IOV_MAX_LEN ? len - i * IOV_MAX_LEN : IOV_MAX_LEN;
	}
#ifdef HAVE_LIBURING
	rc = io_uring_register_buffers(&k->ring, iov, (unsigned)n);
#else
	rc = (int)syscall(__NR_io_uring_register, k->fd, IORING_REGISTER_BUFFERS, iov, (unsigned)n);
	rc = rc < 0 ? -errno : 0;
#endif
	k->registered = rc == 0;
	return rc;
}

static void kring_close(struct kring *k)
{
#ifdef HAVE_LIBURING
	if (k->registered)
		io_uring_unregister_buffers(&k->ring);
	io_uring_queue_exit(&k->ring);
#else
	if (k->registered)
		syscall(__NR_io_uring_register, k->fd, IORING_UNREGISTER_BUFFERS, NULL, 0u);
	close(k->fd);
#endif
	k->registered = 0;
}

static void kring_why(int err, char *out, size_t outsz)
{
	char dis[64];

	read_line_of("/proc/sys/kernel/io_uring_disabled", dis, sizeof(dis));
	snprintf(out, outsz, "%s%s%s", strerror(err),
		 err == EPERM || err == ENOSYS ? "; kernel.io_uring_disabled=" : "",
		 err == EPERM || err == ENOSYS ? dis : "");
}
#endif


/* ------------------------------------------------------------ forks */

struct shared {
	uint64_t t_child;
};
static struct shared *sh;

static int wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return -(WIFSIGNALED(st) ? WTERMSIG(st) : 1);
}

static long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/*
 * One fork: parent latency and child-ready time in milliseconds, and the
 * parent's minor faults from just before fork() to its return (counted
 * outside the timed window).
 */
static void timed_fork(double *parent_ms, double *child_ms, long *faults)
{
	__atomic_store_n(&sh->t_child, 0, __ATOMIC_RELAXED);
	long f0 = minor_faults();
	uint64_t t0 = now_ns();
	pid_t pid = fork();
	if (pid == 0) {
		uint64_t t = now_ns();
		__atomic_store_n(&sh->t_child, t, __ATOMIC_RELEASE);
		_exit(0);
	}
	uint64_t t1 = now_ns();
	*faults = minor_faults() - f0;
	if (pid < 0)
		die("fork");
	int st = wait_child(pid);
	if (st != 0) {
		fprintf(stderr, "fork_copy: child exited with %d\n", st);
		exit(1);
	}
	uint64_t tc = __atomic_load_n(&sh->t_child, __ATOMIC_ACQUIRE);
	*parent_ms = (double)(t1 - t0) / 1e6;
	*child_ms = tc ? (double)(tc - t0) / 1e6 : 0;
}

struct samples {
	double *parent, *child;
	long faults; /* sum over the recorded forks */
	size_t n;
};

static void samples_init(struct samples *s, size_t cap)
{
	s->parent = calloc(cap, sizeof(double));
	s->child = calloc(cap, sizeof(double));
	s->n = 0;
	s->faults = 0;
	if (!s->parent || !s->child)
		die("calloc");
}

static void samples_free(struct samples *s)
{
	free(s->parent);
	free(s->child);
}

static void fork_into(struct samples *s, char *buf, size_t len, int record)
{
	double p, c;
	long f;

	if (len)
		dirty(buf, len);
	timed_fork(&p, &c, &f);
	if (record) {
		s->parent[s->n] = p;
		s->child[s->n] = c;
		s->faults += f;
		s->n++;
	}
}

static void run_block(struct samples *s, char *buf, size_t len, int warm, int reps)
{
	for (int i = 0; i < warm + reps; i++)
		fork_into(s, buf, len, i >= warm);
}

/*
 * One extra fork: the parent writes NCHECK pages right after the fork and
 * compares their frames; the child checks every page is as of the fork.
 */
struct check {
	int child_ok;    /* 1 saw the snapshot, 0 did not */
	int parent_kept; /* 1 frames unchanged, 0 moved, -1 unknown (no PFNs) */
};

static struct check isolation_check(char *buf, size_t len, int sees)
{
	struct check r = { 0, -1 };
	size_t npages = len / page_size;
	size_t idx[NCHECK] = { 0, npages / 2, npages - 1 };
	uint64_t before[NCHECK], after[NCHECK];
	int pfd[2];

	if (pipe(pfd) < 0)
		die("pipe");
	uint64_t g = dirty(buf, len);
	for (int i = 0; i < NCHECK; i++)
		before[i] = pfn_of(buf + idx[i] * page_size);
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		close(pfd[1]);
		unsigned char vec;
		if (read(pfd[0], &c, 1) < 0)
			_exit(4);
		if (sees == SEES_NOTHING) /* not mapped at all in the child */
			_exit(mincore(buf, page_size, &vec) == 0 || errno != ENOMEM ? 3 : 0);
		for (size_t off = 0; off < len; off += page_size)
			if (sees == SEES_ZEROS ? *(volatile uint64_t *)(buf + off) != 0 || buf[off + page_size / 2] != 0
					       : *(volatile uint64_t *)(buf + off) != g || buf[off + page_size / 2] != 0x5a)
				_exit(3);
		_exit(0);
	}
	if (pid < 0)
		die("fork");
	close(pfd[0]);
	for (int i = 0; i < NCHECK; i++) {
		*(volatile uint64_t *)(buf + idx[i] * page_size) = g + 1000;
		after[i] = pfn_of(buf + idx[i] * page_size);
	}
	if (write(pfd[1], "g", 1) != 1)
		die("write");
	close(pfd[1]);
	r.child_ok = wait_child(pid) == 0;
	int known = 1, kept = 1;
	for (int i = 0; i < NCHECK; i++) {
		if (!before[i] || !after[i])
			known = 0;
		else if (before[i] != after[i])
			kept = 0;
	}
	r.parent_kept = known ? kept : -1;
	return r;
}

/* ------------------------------------------------------------ one size */

struct row {
	size_t mib;
	struct stats parent[NCFG], child[NCFG];
	int have[NCFG];
	struct check chk[NCFG];
	long thp_kb;
	long mem_peak_kb, mem_steady_kb; /* copy: peak extra memory at the first fork, pool held after it */
	char kernel_note[320];
};

static void set_mode(enum safefork_mode m)
{
	if (safefork_set_mode(m) < 0)
		die("safefork_set_mode");
}

static uint64_t t_start;

static void progress(const char *fmt, size_t mib, const char *cfg)
{
	fprintf(stderr, "  [%5.1f s] ", (double)(now_ns() - t_start) / 1e9);
	fprintf(stderr, fmt, mib, cfg);
	fflush(stderr);
}

#ifdef HAVE_KRING
static int kernel_available;
#endif
static char kernel_why[200];

static void measure_zero(struct row *r, int warm, int zreps)
{
	struct samples s[NCFG];

	for (int c = 0; c < NCFG; c++)
		samples_init(&s[c], (size_t)zreps + 4);
	progress("S=%zu MiB: %s and copy (interleaved) ...\n", 0, "plain");
	/* Interleaved off, copy, copy, off: drift and ordering effects cancel. */
	for (int i = 0; i < warm; i++) {
		set_mode(SAFEFORK_MODE_OFF);
		fork_into(&s[C_PLAIN], NULL, 0, 0);
		set_mode(SAFEFORK_MODE_COPY);
		fork_into(&s[C_COPY], NULL, 0, 0);
	}
	for (int i = 0; i < zreps; i++) {
		int copy_first = (i & 1) != 0;
		for (int k = 0; k < 2; k++) {
			int c = (k == 0) == copy_first ? C_COPY : C_PLAIN;
			set_mode(c == C_COPY ? SAFEFORK_MODE_COPY : SAFEFORK_MODE_OFF);
			fork_into(&s[c], NULL, 0, 1);
		}
	}
	set_mode(SAFEFORK_MODE_OFF);
	for (int c = C_PLAIN; c <= C_COPY; c += C_COPY - C_PLAIN) {
		r->parent[c] = summarize(s[c].parent, s[c].n, s[c].faults);
		r->child[c] = summarize(s[c].child, s[c].n, s[c].faults);
		r->have[c] = 1;
	}
#ifdef HAVE_KRING
	if (kernel_available) {
		struct kring k;
		progress("S=%zu MiB: %s (ring, no buffers) ...\n", 0, "kernel");
		if (kring_open(&k) == 0) {
			run_block(&s[C_KERNEL], NULL, 0, warm, zreps);
			kring_close(&k);
			r->parent[C_KERNEL] = summarize(s[C_KERNEL].parent, s[C_KERNEL].n, s[C_KERNEL].faults);
			r->child[C_KERNEL] = summarize(s[C_KERNEL].child, s[C_KERNEL].n, s[C_KERNEL].faults);
			r->have[C_KERNEL] = 1;
			snprintf(r->kernel_note, sizeof(r->kernel_note), "an io_uring ring with no buffers registered");
		}
	}
#endif
	for (int c = 0; c < NCFG; c++)
		samples_free(&s[c]);
}

static void set_registered(char *buf, size_t len, int *registered, int want)
{
	if (*registered == want)
		return;
	if (want ? safefork_register(buf, len, 0) < 0 : safefork_unregister(buf, len) < 0)
		die("safefork_register/unregister");
	*registered = want;
}

/* The first copy fork at this size: peak and steady extra memory (see the top of the file). */
static void measure_memory(struct row *r, char *buf, size_t len)
{
	double p, c;
	long f;

	r->mem_peak_kb = r->mem_steady_kb = -1;
	set_mode(SAFEFORK_MODE_COPY);
	dirty(buf, len);
	long rss = status_kb("VmRSS"), pool = staging_rss_kb();
	if (rss < 0 || pool < 0 || reset_peak() < 0) {
		fork_into(NULL, buf, len, 0);
		return;
	}
	timed_fork(&p, &c, &f);
	long hwm = status_kb("VmHWM"), after = staging_rss_kb();
	if (hwm >= 0)
		r->mem_peak_kb = hwm - (rss - pool);
	r->mem_steady_kb = after;
}

static void measure_size(struct row *r, int warm, int reps)
{
	size_t len = r->mib * MIB;
	struct samples s[NCFG];
	char *buf = buf_alloc(len);
	int registered = 0;

	if (!buf)
		die("mmap of the buffer");
	r->thp_kb = anon_huge_kb(buf, len);
	for (int c = 0; c < NCFG; c++)
		samples_init(&s[c], (size_t)reps);

	/* plain, off, copy, dontfork, wipe: interleaved, the order rotating fork by fork */
	progress("S=%zu MiB: %s ...\n", r->mib, "plain, off, copy, dontfork, wipe (interleaved)");
	if (safefork_register(buf, len, 0) < 0)
		die("safefork_register");
	registered = 1;
	measure_memory(r, buf, len);
	for (int i = -warm; i < reps; i++) {
		for (int k = 0; k < C_KERNEL; k++) {
			int c = (k + i + warm) % C_KERNEL;
			set_registered(buf, len, &registered, c != C_PLAIN);
			set_mode(cfg_mode[c]);
			fork_into(&s[c], buf, len, i >= 0);
		}
	}
	for (int c = 0; c < C_KERNEL; c++) {
		r->parent[c] = summarize(s[c].parent, s[c].n, s[c].faults);
		r->child[c] = summarize(s[c].child, s[c].n, s[c].faults);
		r->have[c] = 1;
		set_registered(buf, len, &registered, c != C_PLAIN);
		set_mode(cfg_mode[c]);
		r->chk[c] = isolation_check(buf, len, cfg_child_sees[c]);
	}
	set_registered(buf, len, &registered, 0);
	set_mode(SAFEFORK_MODE_OFF);
	s[C_KERNEL].n = 0;
	s[C_KERNEL].faults = 0;

	/* 3. kernel: pinned by io_uring, nothing registered with the library. */
#ifdef HAVE_KRING
	if (kernel_available) {
		struct kring k;
		int rc;
		progress("S=%zu MiB: %s ...\n", r->mib, cfg_name[C_KERNEL]);
		if ((rc = kring_open(&k)) < 0) {
			kring_why(-rc, kernel_why, sizeof(kernel_why));
			snprintf(r->kernel_note, sizeof(r->kernel_note), "skipped: io_uring_setup: %s", kernel_why);
		} else if ((rc = kring_register(&k, buf, len)) < 0) {
			snprintf(r->kernel_note, sizeof(r->kernel_note), "skipped: IORING_REGISTER_BUFFERS of %zu MiB: %s",
				 r->mib, strerror(-rc));
			kring_close(&k);
		} else {
			run_block(&s[C_KERNEL], buf, len, warm, reps);
			r->parent[C_KERNEL] = summarize(s[C_KERNEL].parent, s[C_KERNEL].n, s[C_KERNEL].faults);
			r->child[C_KERNEL] = summarize(s[C_KERNEL].child, s[C_KERNEL].n, s[C_KERNEL].faults);
			r->have[C_KERNEL] = 1;
			r->chk[C_KERNEL] = isolation_check(buf, len, SEES_SNAPSHOT);
			kring_close(&k);
		}
	}
#endif
	for (int c = 0; c < NCFG; c++)
		samples_free(&s[c]);
	munmap(buf, len);
}

/* ------------------------------------------------------------ output */

static void print_ms(const struct row *r, const struct stats *st, int c, int width)
{
	if (r->have[c])
		printf(" %*.3f", width, st[c].med);
	else
		printf(" %*s", width, "-");
}

static void print_ratio(double a, double b, int ok, int width)
{
	if (ok && b > 0)
		printf(" %*.2fx", width - 1, a / b);
	else
		printf(" %*s", width, "-");
}

static void print_faults(const struct row *r)
{
	printf("           parent minor faults per fork (fork() call to its return):");
	for (int c = 0; c < NCFG; c++)
		if (r->have[c])
			printf(" %s %.2f", cfg_name[c], r->parent[c].faults);
	printf("\n");
}

static const char *kept_str(int k)
{
	return k < 0 ? "unknown (no PFNs: not root?)" : k ? "yes" : "no, moved";
}

static void usage(FILE *f)
{
	fprintf(f, "usage: fork_copy [--sizes=0,4,64,512,2048] [--reps=20] [--zero-reps=200] [--warmup=2] [--other=256]\n"
		   "                 [--no-thp]\n"
		   "  --sizes     registered sizes in MiB, comma separated\n"
		   "  --reps      measured forks per configuration for S > 0 (S >= 1 GiB: a quarter, at least 3)\n"
		   "  --other     MiB of other memory the process has touched (4 KiB pages)\n"
		   "  --zero-reps measured forks per configuration for S = 0\n"
		   "  --warmup    unmeasured forks before each configuration\n"
		   "  --no-thp    madvise(MADV_NOHUGEPAGE) the buffer instead of MADV_HUGEPAGE\n");
}

static int parse_int(const char *v, int min, const char *opt)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < min || n > 1000000) {
		fprintf(stderr, "fork_copy: %s wants a number >= %d, not '%s'\n", opt, min, v);
		usage(stderr);
		exit(2);
	}
	return (int)n;
}

int main(int argc, char **argv)
{
	size_t sizes[MAX_SIZES] = { 0, 4, 64, 512, 2048 };
	int nsizes = 5, reps = 20, zreps = 200, warm = 2, other_mib = 256;
	int zreps_given = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strncmp(a, "--sizes=", 8)) {
			char *p = (char *)a + 8, *end;
			nsizes = 0;
			for (;;) {
				errno = 0;
				unsigned long v = strtoul(p, &end, 10);
				if (errno || end == p || *p == '-' || nsizes == MAX_SIZES || v > (1ul << 20)) {
					fprintf(stderr, "fork_copy: bad --sizes list '%s' (at most %d sizes in MiB)\n", a + 8,
						MAX_SIZES);
					exit(2);
				}
				sizes[nsizes++] = v;
				if (*end == 0)
					break;
				if (*end != ',') {
					fprintf(stderr, "fork_copy: bad --sizes list '%s'\n", a + 8);
					exit(2);
				}
				p = end + 1;
			}
		} else if (!strncmp(a, "--reps=", 7)) {
			reps = parse_int(a + 7, 1, "--reps");
		} else if (!strncmp(a, "--zero-reps=", 12)) {
			zreps = parse_int(a + 12, 2, "--zero-reps");
			zreps_given = 1;
		} else if (!strncmp(a, "--warmup=", 9)) {
			warm = parse_int(a + 9, 0, "--warmup");
		} else if (!strncmp(a, "--other=", 8)) {
			other_mib = parse_int(a + 8, 0, "--other");
		} else if (!strcmp(a, "--no-thp")) {
			use_thp = 0;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "fork_copy: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (!zreps_given && zreps < 10 * reps)
		zreps = 10 * reps;
	zreps += zreps & 1; /* pairs */

	long ps = sysconf(_SC_PAGESIZE);
	page_size = ps > 0 ? (size_t)ps : 4096;
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	sh = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die("mmap of the shared page");
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* the rest of the process: touched memory in 4 KiB pages, which every fork copies page tables of */
	size_t other_len = (size_t)other_mib * MIB;
	char *other = NULL;
	if (other_len) {
		other = mmap(NULL, other_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (other == MAP_FAILED)
			die("mmap of the other memory");
		madvise(other, other_len, MADV_NOHUGEPAGE);
		memset(other, 0x33, other_len);
	}

	/* ---- the machine ---- */
	struct utsname u;
	char cpu[256], thp[128], defrag[128], forklib[512], env_mode[64];
	int fork_is_lib;
	uname(&u);
	cpu_model(cpu, sizeof(cpu));
	read_line_of("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof(thp));
	read_line_of("/sys/kernel/mm/transparent_hugepage/defrag", defrag, sizeof(defrag));
	fork_provider(forklib, sizeof(forklib), &fork_is_lib);
	snprintf(env_mode, sizeof(env_mode), "%s", getenv("SAFEFORK_MODE") ? getenv("SAFEFORK_MODE") : "(unset)");

	printf("fork_copy: parent fork latency and child-ready time with S bytes registered (libsafefork %s)\n",
	       safefork_version());
	printf("machine:  Linux %s %s, %ld CPUs online, CPU: %s\n", u.release, u.machine, sysconf(_SC_NPROCESSORS_ONLN),
	       cpu);
	printf("THP:      enabled: %s; defrag: %s\n", thp, defrag);
	printf("buffer:   mmap, aligned to 2 MiB, madvise(%s), filled fully before measuring;\n"
	       "          8 bytes of every %zu-byte page written between forks\n",
	       use_thp ? "MADV_HUGEPAGE" : "MADV_NOHUGEPAGE", page_size);
	printf("fork():   resolves to %s%s\n", forklib,
	       fork_is_lib ? " (the library's wrapper)" : "  ** NOT libsafefork: the copy column is not the library **");
	printf("process:  %d MiB of other touched memory (4 KiB pages) besides the buffer\n", other_mib);
	printf("modes:    plain = mode off, nothing registered; off = registered, mode off;\n"
	       "          copy/dontfork/wipe = safefork_register(buf, S, 0) + that mode;\n"
	       "          kernel = mode off, nothing registered, buf as io_uring fixed buffers (<= 1 GiB each)\n"
	       "          (SAFEFORK_MODE in the environment: %s; overridden with safefork_set_mode)\n",
	       env_mode);
#ifdef HAVE_KRING
	{
		struct kring k;
		int rc = kring_open(&k);
		if (rc < 0) {
			kring_why(-rc, kernel_why, sizeof(kernel_why));
			printf("kernel:   column skipped: io_uring_setup failed: %s\n", kernel_why);
		} else {
			kernel_available = 1;
			kring_close(&k);
			printf("kernel:   early COW of FOLL_PIN pages, pinned via %s\n", KRING_VIA);
		}
	}
#else
	snprintf(kernel_why, sizeof(kernel_why), "built without liburing and without <linux/io_uring.h> syscall numbers");
	printf("kernel:   column skipped: %s\n", kernel_why);
#endif
	printf("reps:     median of %d forks per configuration (S >= 1 GiB: %d; S=0: %d, plain/copy interleaved), "
	       "after %d warm-up forks;\n          plain/off/copy/dontfork/wipe interleaved, kernel in a block\n",
	       reps, reps / 4 > 3 ? reps / 4 : 3, zreps, warm);
	fflush(stdout);

	/* ---- measure ---- */
	struct row rows[MAX_SIZES];
	t_start = now_ns();
	memset(rows, 0, sizeof(rows));
	fprintf(stderr, "measuring:\n");
	for (int i = 0; i < nsizes; i++) {
		rows[i].mib = sizes[i];
		rows[i].thp_kb = -1;
		if (sizes[i] == 0)
			measure_zero(&rows[i], warm, zreps);
		else
			measure_size(&rows[i], warm, sizes[i] >= 1024 ? (reps / 4 > 3 ? reps / 4 : 3) : reps);
	}
	double elapsed = (double)(now_ns() - t_start) / 1e9;

	/* ---- the tables ---- */
	const char *pool_env = getenv("SAFEFORK_POOL_MAX");
	printf("\nparent fork latency, median ms (ratios of medians):\n");
	printf("%-9s %9s %9s %9s %9s %9s %11s %12s %10s\n", "S", "plain", "off", "copy", "dontfork", "wipe",
	       "kernel_ecow", "copy/kernel", "off/plain");
	for (int i = 0; i < nsizes; i++) {
		const struct row *r = &rows[i];
		char sz[32];
		snprintf(sz, sizeof(sz), "%zu MiB", r->mib);
		printf("%-9s", sz);
		for (int c = 0; c < C_KERNEL; c++)
			print_ms(r, r->parent, c, 9);
		print_ms(r, r->parent, C_KERNEL, 11);
		print_ratio(r->parent[C_COPY].med, r->parent[C_KERNEL].med, r->have[C_COPY] && r->have[C_KERNEL], 12);
		print_ratio(r->parent[C_OFF].med, r->parent[C_PLAIN].med, r->have[C_OFF] && r->have[C_PLAIN], 10);
		printf("\n");
	}
	printf("(S=0: copy = mode copy with nothing registered)\n");
	printf("\nchild ready to run its code after fork() was called, median ms:\n");
	printf("%-9s %9s %9s %9s %9s %11s %12s\n", "S", "plain", "copy", "dontfork", "wipe", "kernel_ecow",
	       "copy/kernel");
	for (int i = 0; i < nsizes; i++) {
		const struct row *r = &rows[i];
		char sz[32];
		snprintf(sz, sizeof(sz), "%zu MiB", r->mib);
		printf("%-9s", sz);
		print_ms(r, r->child, C_PLAIN, 9);
		print_ms(r, r->child, C_COPY, 9);
		print_ms(r, r->child, C_DONTFORK, 9);
		print_ms(r, r->child, C_WIPE, 9);
		print_ms(r, r->child, C_KERNEL, 11);
		print_ratio(r->child[C_COPY].med, r->child[C_KERNEL].med, r->have[C_COPY] && r->have[C_KERNEL], 12);
		printf("\n");
	}
	printf("\ncopy's extra memory in the parent (staging), MiB: peak during the first fork at S, and held\n"
	       "between forks (the pool; SAFEFORK_POOL_MAX=%s):\n", pool_env ? pool_env : "unset, 1024 MiB");
	printf("%-9s %10s %10s\n", "S", "peak", "held");
	for (int i = 0; i < nsizes; i++) {
		const struct row *r = &rows[i];
		if (!r->mib)
			continue;
		char sz[32];
		snprintf(sz, sizeof(sz), "%zu MiB", r->mib);
		if (r->mem_peak_kb < 0)
			printf("%-9s %10s %10s\n", sz, "?", "?");
		else
			printf("%-9s %10.1f %10.1f\n", sz, r->mem_peak_kb / 1024.0, r->mem_steady_kb / 1024.0);
	}

	printf("\nnotes per row:\n");
	for (int i = 0; i < nsizes; i++) {
		const struct row *r = &rows[i];
		if (r->mib == 0) {
			printf("  0 MiB:   parent quartiles: plain %.4f..%.4f, copy %.4f..%.4f (n=%zu each); kernel = %s\n",
			       r->parent[C_PLAIN].q1, r->parent[C_PLAIN].q3, r->parent[C_COPY].q1, r->parent[C_COPY].q3,
			       r->parent[C_PLAIN].n, r->have[C_KERNEL] ? r->kernel_note : "not measured");
			print_faults(r);
			continue;
		}
		printf("  %zu MiB: buffer THP-backed: ", r->mib);
		if (r->thp_kb < 0)
			printf("unknown");
		else
			printf("%ld of %zu MiB", r->thp_kb / 1024, r->mib);
		printf("; parent quartiles:");
		for (int c = 0; c < NCFG; c++)
			if (r->have[c])
				printf(" %s %.3f..%.3f", cfg_name[c], r->parent[c].q1, r->parent[c].q3);
		printf("\n");
		print_faults(r);
		if (r->kernel_note[0])
			printf("           kernel: %s\n", r->kernel_note);
		for (int c = 0; c < NCFG; c++) {
			if (!r->have[c])
				continue;
			printf("           check %-8s: child saw %s: %s; parent kept its physical pages: %s%s\n", cfg_name[c],
			       cfg_child_sees[c] == SEES_NOTHING ? "no buffer"
			       : cfg_child_sees[c] == SEES_ZEROS ? "zeros"
								: "every page as of the fork",
			       r->chk[c].child_ok ? "yes" : "NO", kept_str(r->chk[c].parent_kept),
			       (c == C_PLAIN || c == C_OFF) && r->chk[c].parent_kept == 0 ? " (expected: plain COW)" : "");
		}
	}

	/* ---- targets ---- */
	int met = 0, total = 0;
	printf("\ntargets (printed, not asserted):\n");
#define TARGET(ok, ...)                                         \
	do {                                                    \
		printf(__VA_ARGS__);                            \
		printf("  %s\n", (ok) ? "MET" : "NOT MET");    \
		met += (ok) != 0;                               \
		total++;                                        \
	} while (0)
	for (int i = 0; i < nsizes; i++) {
		const struct row *r = &rows[i];
		if (r->mib == 0) {
			if (r->have[C_PLAIN] && r->have[C_COPY] && r->parent[C_PLAIN].med > 0) {
				double x = r->parent[C_COPY].med / r->parent[C_PLAIN].med;
				TARGET(x <= 1.02, "  S=0 MiB:   nothing registered (mode copy) <= 1.02x plain fork: %.3f vs %.3f ms = %.3fx",
				       r->parent[C_COPY].med, r->parent[C_PLAIN].med, x);
			}
			continue;
		}
		{
			double x = r->parent[C_OFF].med / r->parent[C_PLAIN].med;
			TARGET(x <= 1.02, "  S=%zu MiB: mode off <= 1.02x plain fork: %.3f vs %.3f ms = %.3fx", r->mib,
			       r->parent[C_OFF].med, r->parent[C_PLAIN].med, x);
		}
		if (r->mem_peak_kb >= 0) {
			double lim = (double)r->mib * 1024 + 2048;
			TARGET(r->mem_peak_kb <= lim, "  S=%zu MiB: copy's peak extra memory <= S (+ 2 MiB rounding): %.1f MiB",
			       r->mib, r->mem_peak_kb / 1024.0);
			size_t pool_max_kb = 1u << 20;
			if (pool_env)
				pool_max_kb = (size_t)strtoull(pool_env, NULL, 0) / 1024;
			TARGET((size_t)r->mem_steady_kb <= pool_max_kb + 2048,
			       "  S=%zu MiB: copy's memory between forks <= the pool bound (%zu MiB): %.1f MiB", r->mib,
			       pool_max_kb / 1024, r->mem_steady_kb / 1024.0);
		}
		if (!r->have[C_KERNEL]) {
			printf("  S=%zu MiB: kernel column not measured (%s): targets against it not evaluated\n", r->mib,
			       r->kernel_note[0] ? r->kernel_note : kernel_why);
			continue;
		}
		if (r->mib >= 64) {
			double x = r->parent[C_COPY].med / r->parent[C_KERNEL].med;
			TARGET(x <= 0.5, "  S=%zu MiB: parent latency, copy <= 0.5x kernel early COW: %.3f vs %.3f ms = %.2fx",
			       r->mib, r->parent[C_COPY].med, r->parent[C_KERNEL].med, x);
		}
		{
			double x = r->child[C_COPY].med / r->child[C_KERNEL].med;
			TARGET(x <= 1.0, "  S=%zu MiB: child ready, copy <= 1.0x kernel early COW: %.3f vs %.3f ms = %.2fx",
			       r->mib, r->child[C_COPY].med, r->child[C_KERNEL].med, x);
		}
	}
	printf("  %d of %d targets met\n", met, total);
	printf("\nrun time: %.1f s\n", elapsed);
	return 0;
}
