/*
 * hidden_fork_demo.c - the fork()/DMA bug as applications meet it, and the
 * same binary fixed by preloading libsafefork.
 *
 * The story: an application fills a buffer and hands it to a NIC, which
 * pinned the buffer's physical pages when it was registered.  It then calls
 * a library (libreport) that forks a helper behind its back.  fork() makes
 * the buffer copy-on-write, so the application's next write lands on a new
 * physical page while the NIC keeps the old one: the NIC transmits the
 * previous batch.  Nothing crashes; the data on the wire is just old.
 *
 * The "NIC" is a pipe the buffer was vmsplice()d into.  The pipe holds
 * references to the physical pages, and reading it returns what is in those
 * pages now - exactly what a device DMAing from them would send.  Kernels
 * since 5.9 copy pages pinned with FOLL_PIN (verbs, io_uring) at fork, but a
 * vmsplice reference is not such a pin, so the old-kernel behaviour shows on
 * any kernel.
 *
 * Run it plainly (STALE) and with LD_PRELOAD=libsafefork.so (OK); see
 * demo.sh.  The exit status is 0 either way: the demo shows, it does not
 * test.  Non-zero means the setup itself failed.
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "libreport.h"

#define BUF_LEN (64 * 1024)
#define MSG_LEN 64

static size_t page_size;

static void die(const char *what)
{
	fprintf(stderr, "hidden_fork_demo: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* Every page starts with a readable line naming the batch, the rest is filler. */
static void fill_batch(char *buf, int batch)
{
	for (size_t off = 0; off < BUF_LEN; off += page_size) {
		memset(buf + off, '0' + batch, page_size);
		snprintf(buf + off, MSG_LEN, "batch #%d: sensor readings, page %02zu/%02zu", batch,
			 off / page_size, (size_t)BUF_LEN / page_size);
	}
}

/* Which batch a page of what the NIC sent belongs to, or -1 if neither. */
static int batch_of(const char *page, char *scratch, size_t off)
{
	for (int b = 1; b <= 2; b++) {
		fill_batch(scratch, b);
		if (!memcmp(page, scratch + off, page_size))
			return b;
	}
	return -1;
}

/* Physical frame of the page holding addr; 0 when absent or hidden (only root sees PFNs). */
static uint64_t pfn_of(const void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)addr / page_size * sizeof(e))) != (ssize_t)sizeof(e))
		e = 0;
	close(fd);
	return (e >> 63) & 1 ? e & ((1ull << 55) - 1) : 0;
}

int main(void)
{
	typedef int (*register_fn)(const void *, size_t, unsigned int);
	typedef int (*unregister_fn)(const void *, size_t);
	typedef const char *(*version_fn)(void);
	enum { NPAGES_MAX = BUF_LEN / 4096 };
	uint64_t pfn_before[NPAGES_MAX];
	char *buf, *sent, *scratch;
	int nic[2];

	/* Line-buffered so our lines and the forked helper's appear in order even through a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	size_t npages = BUF_LEN / page_size;
	if (npages == 0 || npages > NPAGES_MAX) {
		fprintf(stderr, "hidden_fork_demo: page size %zu not supported\n", page_size);
		return 2;
	}

	/* A page-aligned heap buffer, as RDMA applications typically allocate one. */
	errno = posix_memalign((void **)&buf, page_size, BUF_LEN);
	if (errno)
		die("posix_memalign");
	sent = malloc(BUF_LEN);
	scratch = malloc(BUF_LEN);
	if (!sent || !scratch)
		die("malloc");
	fill_batch(buf, 1);

	/* The NIC takes references to the physical pages, as a DMA registration pins them. */
	if (pipe2(nic, O_CLOEXEC) < 0)
		die("pipe2");
	if (fcntl(nic[1], F_SETPIPE_SZ, 1 << 20) < 0 && fcntl(nic[1], F_GETPIPE_SZ) < BUF_LEN)
		die("F_SETPIPE_SZ (the pipe cannot hold the buffer)");
	for (size_t put = 0; put < BUF_LEN;) {
		/* No SPLICE_F_GIFT: the application keeps using the pages, like registered memory. */
		struct iovec iov = { buf + put, BUF_LEN - put };
		ssize_t r = vmsplice(nic[1], &iov, 1, SPLICE_F_NONBLOCK);
		if (r <= 0)
			die("vmsplice");
		put += (size_t)r;
	}
	int pfns_visible = pfn_of(buf) != 0;
	for (size_t i = 0; i < npages; i++)
		pfn_before[i] = pfn_of(buf + i * page_size);
	printf("app: %d KiB buffer filled with batch #1 and handed to the NIC (pages pinned)\n", BUF_LEN / 1024);

	/*
	 * Register the buffer, as ibv_reg_mr() would.  Looked up at run time so
	 * the same binary runs without the library; a legacy program would not
	 * call this at all - the preloaded library sees its ibv_reg_mr() instead.
	 */
	register_fn reg = (register_fn)dlsym(RTLD_DEFAULT, "safefork_register");
	version_fn ver = (version_fn)dlsym(RTLD_DEFAULT, "safefork_version");
	if (reg) {
		if (reg(buf, BUF_LEN, 0) != 0)
			die("safefork_register");
		printf("app: libsafefork %s loaded: buffer registered as pinned\n", ver ? ver() : "?");
	} else {
		printf("app: libsafefork not loaded: nothing registered\n");
	}

	/* An innocent library call that forks deep inside. */
	printf("app: calling report_status() in libreport.so\n");
	if (report_status("batch #1 queued") != 0)
		die("report_status");

	/* The next transfer: refill the same registered buffer in place. */
	fill_batch(buf, 2);
	printf("app: wrote batch #2 into the same buffer; the NIC sends it\n");

	size_t moved = 0;
	for (size_t i = 0; pfns_visible && i < npages; i++)
		moved += pfn_of(buf + i * page_size) != pfn_before[i];
	if (!pfns_visible)
		printf("  physical pages: (PFNs hidden: not root)\n");
	else if (moved)
		printf("  physical page 0: PFN %#llx -> %#llx: MOVED (%zu/%zu pages); the NIC still has the old ones\n",
		       (unsigned long long)pfn_before[0], (unsigned long long)pfn_of(buf), moved, npages);
	else
		printf("  physical page 0: PFN %#llx -> %#llx: kept (%zu/%zu pages); the NIC and the app still share them\n",
		       (unsigned long long)pfn_before[0], (unsigned long long)pfn_of(buf), npages, npages);

	/* "Transmit": what the NIC sends is what is in the physical pages it holds. */
	for (size_t got = 0; got < BUF_LEN;) {
		ssize_t r = read(nic[0], sent + got, BUF_LEN - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			errno = r < 0 ? errno : EIO;
			die("reading the NIC pipe");
		}
		got += (size_t)r;
	}

	size_t stale = 0, ok = 0;
	for (size_t off = 0; off < BUF_LEN; off += page_size) {
		int b = batch_of(sent + off, scratch, off);
		stale += b == 1;
		ok += b == 2;
	}
	printf("  application wrote: \"%.*s\"\n", MSG_LEN, buf);
	printf("  the NIC sent     : \"%.*s\"\n", MSG_LEN, sent);
	printf("  pages sent: %zu/%zu stale (batch #1), %zu/%zu current (batch #2)\n", stale, npages, ok, npages);
	if (stale)
		printf("STALE: the device sent the pre-fork data\n");
	else if (ok == npages)
		printf("OK: the device sent what the application wrote\n");
	else
		printf("CORRUPT: the device sent neither batch\n");

	/* Deregister before freeing, as ibv_dereg_mr() comes before free(). */
	unregister_fn unreg = (unregister_fn)dlsym(RTLD_DEFAULT, "safefork_unregister");
	if (reg && unreg && unreg(buf, BUF_LEN) != 0)
		die("safefork_unregister");
	close(nic[0]);
	close(nic[1]);
	free(scratch);
	free(sent);
	free(buf);
	return 0;
}
