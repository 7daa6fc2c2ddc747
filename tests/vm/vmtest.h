/*
 * vmtest.h - what vm-verbs and vm-uring share: the 2 MiB test buffer
 * (normal pages, THP or hugetlb), the byte patterns, the forked child that
 * watches its copy, and the RESULT line the QEMU harness reads.
 *
 * These programs run inside the guest (tests/vm/run.sh), without and with
 * LD_PRELOAD=libsafefork.so.  They never link the library: the control is
 * the program alone.  Exit 0 (a RESULT line was printed, whatever the
 * verdict: the harness judges it), 77 SKIP, 1 ERROR.
 */
#ifndef VMTEST_H
#define VMTEST_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUF_LEN (2ul << 20)
#define PG 4096ul
#define PAGES ((int)(BUF_LEN / PG))

/* Fork-time data, the parent's write after the fork, the device's write, the child's write. */
enum { PAT_A = 0xa1, PAT_B = 0xb2, PAT_C = 0xc3, PAT_D = 0xd4, PAT_E = 0xe5 };

static const char *scenario = "?";

static void vt_result(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void vt_result(const char *fmt, ...)
{
	va_list ap;
	printf("RESULT %s ", scenario);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

__attribute__((noreturn, format(printf, 1, 2))) static void vt_skip(const char *fmt, ...)
{
	va_list ap;
	printf("RESULT %s SKIP ", scenario);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(77);
}

__attribute__((noreturn, format(printf, 1, 2))) static void vt_error(const char *fmt, ...)
{
	va_list ap;
	printf("RESULT %s ERROR ", scenario);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" (errno %s)\n", strerror(errno));
	fflush(stdout);
	exit(1);
}

/* 4 KiB pages of p[0, len) that are not entirely `byte`. */
static int vt_bad_pages(const unsigned char *p, size_t len, int byte)
{
	int bad = 0;
	for (size_t off = 0; off < len; off += PG) {
		const unsigned char *q = p + off;
		size_t i;
		for (i = 0; i < PG && q[i] == (unsigned char)byte; i++)
			;
		bad += i < PG;
	}
	return bad;
}

/* Is the mapping holding p backed by transparent huge pages (AnonHugePages in smaps)? */
static int vt_thp_backed(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[256];
	int in = 0, kb = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			if (in)
				break;
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		} else if (in && sscanf(line, "AnonHugePages: %d kB", &kb) == 1) {
			break;
		}
	}
	fclose(f);
	return kb >= 2048;
}

/* The 2 MiB buffer of the given kind ("normal", "thp", "hugetlb"), or SKIP. */
static unsigned char *vt_buffer(const char *kind)
{
	unsigned char *p;
	if (!strcmp(kind, "hugetlb")) {
		p = mmap(NULL, BUF_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
		if (p == MAP_FAILED)
			vt_skip("no free 2 MiB huge page (vm.nr_hugepages): %s", strerror(errno));
	} else {
		/* 2 MiB aligned inside a 4 MiB reservation */
		unsigned char *r = mmap(NULL, 2 * BUF_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (r == MAP_FAILED)
			vt_error("mmap");
		p = (unsigned char *)(((uintptr_t)r + BUF_LEN - 1) & ~(BUF_LEN - 1));
		if (p > r)
			munmap(r, (size_t)(p - r));
		munmap(p + BUF_LEN, (size_t)(r + BUF_LEN - p));
		if (madvise(p, BUF_LEN, !strcmp(kind, "thp") ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0)
			vt_skip("madvise(%s) failed: %s", kind, strerror(errno));
	}
	memset(p, PAT_A, BUF_LEN);
	if (!strcmp(kind, "thp") && !vt_thp_backed(p))
		vt_skip("the buffer did not get a transparent huge page (transparent_hugepage=never?)");
	return p;
}

/*
 * Is the child allowed to read its copy of the buffer?  Not when the library
 * keeps the buffer out of children (dontfork): the child has no mapping there.
 */
static int vt_child_may_touch(void)
{
	const char *pre = getenv("LD_PRELOAD"), *mode = getenv("SAFEFORK_MODE");
	return !(pre && strstr(pre, "libsafefork") && mode && !strcmp(mode, "dontfork"));
}

/* What the child found in its copy (bits of its status byte). */
enum {
	CH_START_WRONG = 1, /* not the fork-time data when it started */
	CH_SAW_DEVICE = 2,  /* the device's write (PAT_C) landed in the child's copy */
	CH_CHANGED = 4,     /* something else changed its copy */
	CH_NOWRITE = 8,     /* its own write did not stick */
	CH_UNTOUCHED = 16,  /* did not look (no mapping there in dontfork mode) */
};

struct vt_child {
	pid_t pid;
	int go, st; /* parent's ends of the pipes */
	int status;
};

/* Fork a child that checks its copy at start, waits for vt_child_go, checks again, writes its own data. */
static void vt_fork(struct vt_child *c, unsigned char *buf)
{
	int p2c[2], c2p[2];
	if (pipe(p2c) || pipe(c2p))
		vt_error("pipe");
	fflush(stdout);
	c->pid = fork();
	if (c->pid < 0)
		vt_error("fork");
	if (c->pid == 0) {
		unsigned char st = 0, x;
		int touch = vt_child_may_touch();
		close(p2c[1]);
		close(c2p[0]);
		if (!touch)
			st |= CH_UNTOUCHED;
		else if (vt_bad_pages(buf, BUF_LEN, PAT_A))
			st |= CH_START_WRONG;
		if (write(c2p[1], &st, 1) != 1 || read(p2c[0], &x, 1) != 1)
			_exit(1);
		if (touch) {
			if (vt_bad_pages(buf, BUF_LEN, PAT_A))
				st |= vt_bad_pages(buf, BUF_LEN, PAT_C) < PAGES ? CH_SAW_DEVICE : CH_CHANGED;
			memset(buf, PAT_D, BUF_LEN);
			if (vt_bad_pages(buf, BUF_LEN, PAT_D))
				st |= CH_NOWRITE;
		}
		if (write(c2p[1], &st, 1) != 1)
			_exit(1);
		_exit(0);
	}
	close(p2c[0]);
	close(c2p[1]);
	c->go = p2c[1];
	c->st = c2p[0];
	unsigned char st;
	if (read(c->st, &st, 1) != 1)
		vt_error("the child died before it started");
	c->status = st;
}

/* Let the child finish and reap it; its findings in c->status (-1: it died). */
static void vt_child_finish(struct vt_child *c)
{
	unsigned char st, x = 1;
	int ws;
	if (c->pid <= 0)
		return;
	if (write(c->go, &x, 1) != 1 || read(c->st, &st, 1) != 1)
		c->status = -1;
	else
		c->status |= st;
	while (waitpid(c->pid, &ws, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		c->status = -1;
	close(c->go);
	close(c->st);
	c->pid = 0;
}

/* The child's findings as one word for the RESULT line. */
static const char *vt_child_word(int st)
{
	if (st < 0)
		return "died";
	if (st & CH_UNTOUCHED)
		return "untouched";
	if (st & CH_SAW_DEVICE)
		return "saw-device-write";
	if (st & (CH_START_WRONG | CH_CHANGED))
		return "changed";
	if (st & CH_NOWRITE)
		return "cannot-write";
	return "fork-time";
}

/* The parent's verdict: COHERENT, STALE (device read old data), LOST (device write missed the parent), both. */
static void vt_report(int stale, int lost, int leak, int child_status, const char *extra)
{
	const char *v = stale && lost ? "STALE+LOST" : stale ? "STALE" : lost ? "LOST" : "COHERENT";
	vt_result("%s stale=%d/%d lost=%d/%d child=%s%s%s", leak ? "LEAK" : v, stale, PAGES, lost, PAGES,
		  vt_child_word(child_status), extra ? " " : "", extra ? extra : "");
}

#endif
