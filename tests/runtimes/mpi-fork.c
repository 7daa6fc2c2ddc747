/*
 * mpi-fork.c - an MPI rank that registers a buffer, forks, and communicates
 * afterwards, run by tests/runtimes/run.sh under mpirun -np 2 with the
 * library preloaded (-x LD_PRELOAD), with it off, and without it.
 *
 * Each rank:
 *   1. notes whether Open MPI's memory patcher rewrote libc's munmap() during
 *      MPI_Init and whether its release hook (opal_mem_hooks, what the
 *      registration caches rely on) still sees madvise(MADV_DONTNEED) and
 *      munmap() of a scratch mapping: run.sh compares this line with the run
 *      without the library, so a library that hides those calls from Open MPI
 *      fails;
 *   2. registers a buffer (safefork_register, when the library is loaded: no
 *      RDMA device here) and lets the vmsplice "device" (tests/harness.h)
 *      hold its pages; a second registered mapping carries the program's own
 *      madvise(MADV_DONTFORK), which must survive the forks;
 *   3. forks through system() (NSYSTEM times, statuses checked) and through
 *      fork(): the child checks it sees the fork-time generation 1 and writes
 *      3 privately, the parent writes 2 while the child is alive; the device
 *      then sees 2 (coherent: the parent kept its physical pages) or 1
 *      (stale);
 *   4. communicates: MPI_Sendrecv into the registered buffer, MPI_Allreduce
 *      of checksums and verdicts, data checked.
 * One "rank R:" line per rank says what was seen.  Exit 0 when the rank's own
 * checks hold (whatever the verdict: run.sh knows which verdict each run must
 * give), 1 otherwise.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mpi.h>

#include "harness.h"
#include "safefork.h"

#define NPAGES 64
#define NSYSTEM 5

/* ---- Open MPI's memory hooks (libopen-pal, loaded with libmpi) ---- */
typedef void opal_release_fn(void *buf, size_t length, void *cbdata, bool from_alloc);
static char *scratch;
static size_t scratch_len;
static volatile int release_hits;

static void on_release(void *buf, size_t length, void *cbdata, bool from_alloc)
{
	(void)cbdata;
	(void)from_alloc;
	if ((char *)buf < scratch + scratch_len && (char *)buf + length > scratch)
		release_hits++;
}

/* madvise(MADV_DONTNEED) and munmap() of a scratch mapping: how many did Open MPI's release hook see? */
static void hooks_check(int *level, int *dontneed_hits, int *munmap_hits)
{
	int (*support)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "opal_mem_hooks_support_level");
	int (*reg)(opal_release_fn *, void *) =
		(int (*)(opal_release_fn *, void *))dlsym(RTLD_DEFAULT, "opal_mem_hooks_register_release");
	int (*unreg)(opal_release_fn *) = (int (*)(opal_release_fn *))dlsym(RTLD_DEFAULT,
									    "opal_mem_hooks_unregister_release");

	*level = *dontneed_hits = *munmap_hits = -1;
	if (!support || !reg || !unreg)
		return; /* not Open MPI */
	*level = support();
	if (*level <= 0)
		return; /* no hooks installed (the patcher is opened only by components that register memory) */
	scratch_len = 1 << 20;
	scratch = t_map(scratch_len);
	memset(scratch, 1, scratch_len);
	T_CHECK(reg(on_release, NULL) == 0, "opal_mem_hooks_register_release failed");
	release_hits = 0;
	T_CHECK(madvise(scratch, scratch_len, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED): %s", strerror(errno));
	*dontneed_hits = release_hits > 0;
	release_hits = 0;
	T_CHECK(munmap(scratch, scratch_len) == 0, "munmap: %s", strerror(errno));
	*munmap_hits = release_hits > 0;
	unreg(on_release);
}

static void code_bytes(void *out)
{
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	void *f = libc ? dlsym(libc, "munmap") : NULL;
	T_CHECK(f != NULL, "libc's munmap not found");
	memcpy(out, f, 16);
}

int main(int argc, char **argv)
{
	unsigned char munmap_before[16], munmap_after[16];
	int rank, size, level, dn, um;
	long ps = sysconf(_SC_PAGESIZE);
	size_t len = NPAGES * (size_t)ps;
	unsigned long long checked = 0;

	t_watchdog(120);
	code_bytes(munmap_before);
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	T_CHECK(size == 2, "run with -np 2 (size %d)", size);
	code_bytes(munmap_after);
	hooks_check(&level, &dn, &um);
	printf("rank %d: hooks: libc munmap patched %s, opal_mem_hooks level %d, release hook saw "
	       "madvise(MADV_DONTNEED) %d, munmap %d\n",
	       rank, memcmp(munmap_before, munmap_after, 16) ? "yes" : "no", level, dn, um);
	fflush(stdout);

	/* The buffer, registered and held by the device; a second one with the program's own DONTFORK. */
	char *buf = t_map(len), *adv = t_map(4 * (size_t)ps);
	t_fill(buf, len, 1);
	memset(adv, 7, 4 * (size_t)ps);
	T_CHECK(t_register(buf, len, 0) == 0 && t_register(adv, 4 * (size_t)ps, 0) == 0, "safefork_register: %s",
		strerror(errno));
	T_CHECK(madvise(adv, 4 * (size_t)ps, MADV_DONTFORK) == 0, "program's madvise(MADV_DONTFORK)");
	int pfns = t_can_see_pfns();
	uint64_t pfn0 = pfns ? t_pfn(buf) : 0;
	struct t_device dev;
	t_dev_attach(&dev, buf, len);

	/* system(): a shell that exits with a known status, NSYSTEM times. */
	for (int i = 0; i < NSYSTEM; i++) {
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "exit %d", 10 + i);
		int st = system(cmd);
		T_CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 10 + i, "system(\"%s\") returned %d", cmd,
			st);
	}
	T_CHECK(t_gen_of(buf, len, NULL) == 1, "system() changed the registered buffer");

	/* fork(): the protection check. */
	int checked_p[2], wrote_p[2];
	T_CHECK(pipe(checked_p) == 0 && pipe(wrote_p) == 0, "pipe");
	pid_t pid = fork();
	T_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		char x;
		if (t_gen_of(buf, len, NULL) != 1)
			_exit(2);
		if (write(checked_p[1], "c", 1) != 1 || read(wrote_p[0], &x, 1) != 1)
			_exit(5);
		t_fill(buf, len, 3);
		_exit(t_gen_of(buf, len, NULL) == 3 ? 0 : 3);
	}
	close(checked_p[1]);
	close(wrote_p[0]);
	char x = 0;
	T_CHECK(read(checked_p[0], &x, 1) == 1, "the fork child did not check in (status %d)", t_wait(pid));
	t_fill(buf, len, 2);
	T_CHECK(write(wrote_p[1], "w", 1) == 1, "handshake");
	int st = t_wait(pid);
	T_CHECK(st == 0, "fork child: status %d (2: it did not see the fork-time data)", st);
	close(checked_p[0]);
	close(wrote_p[1]);
	T_CHECK(t_gen_of(buf, len, NULL) == 2, "the parent lost its own write");
	char *seen = malloc(len);
	T_CHECK(seen != NULL, "malloc");
	t_dev_read(&dev, seen);
	t_dev_close(&dev);
	long g = t_gen_of(seen, len, NULL);
	free(seen);
	checked += 2 * len;
	T_CHECK(g == 1 || g == 2 || g == 3, "device sees neither generation (torn)");
	int coherent = g == 2;
	if (pfns)
		T_CHECK(coherent == (t_pfn(buf) == pfn0), "device %s but the parent %s its physical page",
			coherent ? "coherent" : "stale", coherent ? "left" : "kept");
	int kept = t_vmflag(adv, "dc");

	/* Communicate afterwards: into the registered buffer, then a reduction. */
	int peer = 1 - rank;
	char *out = malloc(len);
	T_CHECK(out != NULL, "malloc");
	t_fill(out, len, 20 + (uint32_t)rank);
	T_CHECK(MPI_Sendrecv(out, (int)len, MPI_BYTE, peer, 1, buf, (int)len, MPI_BYTE, peer, 1, MPI_COMM_WORLD,
			     MPI_STATUS_IGNORE) == MPI_SUCCESS, "MPI_Sendrecv");
	T_CHECK(t_gen_of(buf, len, NULL) == 20 + peer, "MPI_Sendrecv: the registered buffer holds generation %ld, "
		"expected the peer's %d", t_gen_of(buf, len, NULL), 20 + peer);
	checked += len;
	unsigned long long sum = 0, total = 0, want = 0;
	for (size_t i = 0; i < len / 8; i++)
		sum += ((uint64_t *)buf)[i];
	for (int r = 0; r < 2; r++) { /* what both ranks' buffers sum to: each holds the other's generation */
		t_fill(out, len, 20 + (uint32_t)r);
		for (size_t i = 0; i < len / 8; i++)
			want += ((uint64_t *)out)[i];
	}
	free(out);
	T_CHECK(MPI_Allreduce(&sum, &total, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD) == MPI_SUCCESS,
		"MPI_Allreduce");
	T_CHECK(total == want, "MPI_Allreduce: %llu, expected %llu", total, want);
	int verdicts[2] = { coherent, -coherent }, agree[2];
	MPI_Allreduce(verdicts, agree, 2, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	checked += 2 * len;

	struct safefork_stats fs;
	int have_stats = t_stats(&fs) == 0;
	T_CHECK(t_unregister(buf, len) == 0 && t_unregister(adv, 4 * (size_t)ps) == 0, "safefork_unregister: %s",
		strerror(errno));
	printf("rank %d: verdict %s; system() x%d ok; fork child saw the fork-time data; program's MADV_DONTFORK "
	       "%s; sendrecv + allreduce ok; ranks agree %s; %llu bytes checked; library %s (forks protected %llu, "
	       "bytes copied %llu)\n",
	       rank, coherent ? "coherent" : "STALE", NSYSTEM, kept == 1 ? "kept" : "LOST",
	       agree[0] == -agree[1] ? "yes" : "NO", checked, have_stats ? "loaded" : "absent",
	       have_stats ? fs.forks_protected : 0, have_stats ? fs.bytes_copied : 0);
	fflush(stdout);
	MPI_Finalize();
	return kept == 1 && agree[0] == -agree[1] ? 0 : 1;
}
