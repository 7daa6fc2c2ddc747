/*
 * many_ranges.c - 10 000 live registrations: VMAs (/proc/self/maps lines)
 * and fork latency, rdma-core's fork support against libsafefork's copy.
 *
 *   rdma-core  no libsafefork; ibv_fork_init(), then ibv_dontfork_range()
 *              on each range (libibverbs dlopen()ed; no device needed): one
 *              madvise(MADV_DONTFORK) per range, which splits the mapping;
 *   copy       libsafefork preloaded, SAFEFORK_MODE=copy,
 *              safefork_register() on each range: a table entry, no VMA
 *              change until a fork, and none after it.
 *
 * Layouts, in one 2 x N x 16 KiB arena (written before, memory in use):
 *   scattered  N ranges of 16 KiB with a 16 KiB gap after each;
 *   adjacent   N ranges of 16 KiB back to back;
 *   one        a single range over the same N x 16 KiB.
 * VMAs are counted at steady state (registered, no fork running) against
 * the count before registering.  Fork latency: from fork() to its return in
 * the parent, median of --reps forks (copy: adjacent and one interleaved
 * fork by fork).  Targets (printed, not asserted): copy adds 0 VMAs, and
 * forks with N adjacent ranges within 1.5x of one range of the same bytes.
 *
 * Usage: many_ranges [--ranges=10000] [--reps=20] [--lib=libsafefork.so] [--quick]
 * (BENCH_QUICK=1: --ranges=1000 --reps=5)
 */
#include "config.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "median.h"

#define CHUNK (16ul << 10)
#define MAX_REPS 1000

static int nranges = 10000, reps = 20;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int vmas(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, c;

	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Mappings overlapping [a, a+len): the arena's pieces. */
static int arena_vmas(const char *a, size_t len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s < (uintptr_t)a + len && e > (uintptr_t)a)
			n++;
	}
	fclose(f);
	return n;
}

static double fork_ms(void)
{
	uint64_t t0 = now_ns();
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	uint64_t t1 = now_ns();
	if (pid < 0) {
		perror("many_ranges: fork");
		exit(1);
	}
	int st;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "many_ranges: child failed\n");
		exit(1);
	}
	return (double)(t1 - t0) / 1e6;
}

static char *arena_map(void)
{
	size_t len = 2 * (size_t)nranges * CHUNK;
	char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (a == MAP_FAILED) {
		perror("many_ranges: mmap");
		exit(1);
	}
	memset(a, 7, len);
	return a;
}

/* ------------------------------------------------------------ roles: print "key value" lines */

static int role_rdma(void)
{
	void *h = dlopen("libibverbs.so.1", RTLD_NOW);
	if (!h) {
		printf("skip %s\n", dlerror());
		return 0;
	}
	int (*fork_init)(void) = (int (*)(void))dlsym(h, "ibv_fork_init");
	int (*dontfork)(void *, size_t) = (int (*)(void *, size_t))dlsym(h, "ibv_dontfork_range");
	if (!fork_init || !dontfork || fork_init() != 0) {
		printf("skip ibv_fork_init unavailable or failed\n");
		return 0;
	}
	char *a = arena_map();
	int v0 = vmas();
	for (int i = 0; i < nranges; i++)
		if (dontfork(a + 2 * (size_t)i * CHUNK, CHUNK) != 0) {
			perror("many_ranges: ibv_dontfork_range");
			return 1;
		}
	printf("vmas_added %d\n", vmas() - v0);
	printf("arena_vmas %d\n", arena_vmas(a, 2 * (size_t)nranges * CHUNK));
	double t[MAX_REPS];
	for (int i = 0; i < reps + 2; i++) {
		double x = fork_ms();
		if (i >= 2)
			t[i - 2] = x;
	}
	printf("fork_scattered %.4f\n", median(t, reps));
	return 0;
}

static int role_copy(void)
{
	int (*reg)(const void *, size_t, unsigned) =
		(int (*)(const void *, size_t, unsigned))dlsym(RTLD_DEFAULT, "safefork_register");
	int (*unreg)(const void *, size_t) = (int (*)(const void *, size_t))dlsym(RTLD_DEFAULT, "safefork_unregister");
	if (!reg || !unreg) {
		fprintf(stderr, "many_ranges: libsafefork is not preloaded (bad --lib?)\n");
		return 1;
	}
	char *a = arena_map();
	size_t total = (size_t)nranges * CHUNK;
	int v0 = vmas();
	for (int i = 0; i < nranges; i++)
		if (reg(a + 2 * (size_t)i * CHUNK, CHUNK, 0) != 0) {
			perror("many_ranges: safefork_register");
			return 1;
		}
	printf("vmas_added %d\n", vmas() - v0);
	printf("arena_vmas %d\n", arena_vmas(a, 2 * total));
	double t[MAX_REPS];
	for (int i = 0; i < reps + 2; i++) {
		double x = fork_ms();
		if (i >= 2)
			t[i - 2] = x;
	}
	printf("vmas_after_forks %d\n", vmas() - v0);
	printf("arena_vmas_after %d\n", arena_vmas(a, 2 * total));
	printf("fork_scattered %.4f\n", median(t, reps));
	for (int i = 0; i < nranges; i++)
		unreg(a + 2 * (size_t)i * CHUNK, CHUNK);

	/* adjacent N ranges against one range of the same bytes, interleaved */
	double ta[MAX_REPS], to[MAX_REPS];
	for (int i = 0; i < reps + 2; i++) {
		for (int k = 0; k < 2; k++) {
			int adjacent = (k + i) % 2;
			if (adjacent)
				for (int j = 0; j < nranges; j++)
					reg(a + (size_t)j * CHUNK, CHUNK, 0);
			else
				reg(a, total, 0);
			double x = fork_ms();
			if (adjacent)
				for (int j = 0; j < nranges; j++)
					unreg(a + (size_t)j * CHUNK, CHUNK);
			else
				unreg(a, total);
			if (i >= 2)
				(adjacent ? ta : to)[i - 2] = x;
		}
	}
	printf("fork_adjacent %.4f\n", median(ta, reps));
	printf("fork_one %.4f\n", median(to, reps));
	/* no registration: the same process, for scale */
	for (int i = 0; i < reps; i++)
		t[i] = fork_ms();
	printf("fork_none %.4f\n", median(t, reps));
	return 0;
}

/* ------------------------------------------------------------ driver */

struct result {
	int skip;
	char why[200];
	double vmas_added, vmas_after, arena, arena_after, scattered, adjacent, one, none;
};

static char self[4096], lib[4096];

static int run_role(const char *role, int preload, struct result *r)
{
	int pfd[2];
	char a1[32], a2[32], a3[64];

	memset(r, 0, sizeof(*r));
	r->vmas_after = -1;
	if (pipe(pfd) < 0)
		return -1;
	snprintf(a1, sizeof(a1), "--ranges=%d", nranges);
	snprintf(a2, sizeof(a2), "--reps=%d", reps);
	snprintf(a3, sizeof(a3), "--role=%s", role);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		if (preload) {
			setenv("LD_PRELOAD", lib, 1);
			setenv("SAFEFORK_MODE", "copy", 1);
		} else {
			unsetenv("LD_PRELOAD");
		}
		execl(self, self, a1, a2, a3, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	FILE *f = fdopen(pfd[0], "r");
	char line[256], key[64];
	double v;
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "skip ", 5)) {
			r->skip = 1;
			snprintf(r->why, sizeof(r->why), "%.190s", line + 5);
			r->why[strcspn(r->why, "\n")] = 0;
		} else if (sscanf(line, "%63s %lf", key, &v) == 2) {
			if (!strcmp(key, "vmas_added"))
				r->vmas_added = v;
			else if (!strcmp(key, "arena_vmas"))
				r->arena = v;
			else if (!strcmp(key, "arena_vmas_after"))
				r->arena_after = v;
			else if (!strcmp(key, "vmas_after_forks"))
				r->vmas_after = v;
			else if (!strcmp(key, "fork_scattered"))
				r->scattered = v;
			else if (!strcmp(key, "fork_adjacent"))
				r->adjacent = v;
			else if (!strcmp(key, "fork_one"))
				r->one = v;
			else if (!strcmp(key, "fork_none"))
				r->none = v;
		}
	}
	if (f)
		fclose(f);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *role = NULL, *q = getenv("BENCH_QUICK");

	if (q && *q && strcmp(q, "0")) {
		nranges = 1000;
		reps = 5;
	}
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--ranges=", 9))
			nranges = atoi(argv[i] + 9);
		else if (!strncmp(argv[i], "--reps=", 7))
			reps = atoi(argv[i] + 7);
		else if (!strncmp(argv[i], "--role=", 7))
			role = argv[i] + 7;
		else if (!strncmp(argv[i], "--lib=", 6))
			snprintf(lib, sizeof(lib), "%s", argv[i] + 6);
		else if (!strcmp(argv[i], "--quick")) {
			nranges = 1000;
			reps = 5;
		} else {
			fprintf(stderr, "usage: many_ranges [--ranges=10000] [--reps=20] [--lib=libsafefork.so] [--quick]\n");
			return 2;
		}
	}
	if (nranges < 1 || reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "many_ranges: --ranges >= 1, 1 <= --reps <= %d\n", MAX_REPS);
		return 2;
	}
	if (role)
		return !strcmp(role, "rdma") ? role_rdma() : role_copy();

	ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (l <= 0) {
		perror("many_ranges: /proc/self/exe");
		return 1;
	}
	self[l] = 0;
	if (!lib[0]) {
		char *slash = strrchr(self, '/');
		snprintf(lib, sizeof(lib), "%.*s/../src/.libs/libsafefork.so", (int)(slash - self), self);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("many_ranges: %d registrations of 16 KiB: VMAs and fork latency, rdma-core fork support vs copy\n",
	       nranges);
	printf("arena:    %zu MiB written; scattered = every other 16 KiB chunk, adjacent = back to back,\n"
	       "          one = a single range of the same %zu MiB; fork latency: median of %d forks (ms)\n",
	       2 * (size_t)nranges * CHUNK >> 20, (size_t)nranges * CHUNK >> 20, reps);

	struct result rd, cp;
	if (run_role("rdma", 0, &rd) < 0 || run_role("copy", 1, &cp) < 0) {
		fprintf(stderr, "many_ranges: a configuration failed\n");
		return 1;
	}
	printf("\n%-34s %12s %12s\n", "", "rdma-core", "copy");
	if (rd.skip)
		printf("(rdma-core: not measured: %s)\n", rd.why);
	printf("%-34s %12.0f %12.0f\n", "arena's mapping: VMAs (was 1)", rd.skip ? -1 : rd.arena, cp.arena);
	printf("%-34s %12s %12.0f\n", "arena's mapping after the forks", "", cp.arena_after);
	printf("%-34s %12.0f %12.0f\n", "all VMAs added, steady state", rd.skip ? -1 : rd.vmas_added, cp.vmas_added);
	printf("%-34s %12s %12.0f\n", "all VMAs added, after the forks", "", cp.vmas_after);
	printf("(copy's own: the range table and fork-plan scratch; after forks also the staging pool and its\n"
	       " control page, kept for the next fork)\n");
	printf("%-34s %12.3f %12.3f\n", "fork, scattered ranges (ms)", rd.skip ? -1 : rd.scattered, cp.scattered);
	printf("%-34s %12s %12.3f\n", "fork, adjacent ranges (ms)", "", cp.adjacent);
	printf("%-34s %12s %12.3f\n", "fork, one range, same bytes (ms)", "", cp.one);
	printf("%-34s %12s %12.3f\n", "fork, nothing registered (ms)", "", cp.none);
	printf("(rdma-core's child gets none of the registered memory; copy's child gets a copy of all of it)\n");

	printf("\ntargets (printed, not asserted):\n");
	int ok1 = cp.arena == 1 && cp.arena_after == 1;
	printf("  copy: +0 VMAs in the program's mappings at steady state (rdma-core: %+.0f): %+.0f, %+.0f after the "
	       "forks  %s\n", rd.skip ? 0 : rd.arena - 1, cp.arena - 1, cp.arena_after - 1, ok1 ? "MET" : "NOT MET");
	double x = cp.adjacent / cp.one;
	printf("  copy: fork with %d adjacent ranges <= 1.5x one range of the same bytes: %.3f vs %.3f ms = %.2fx  %s\n",
	       nranges, cp.adjacent, cp.one, x, x <= 1.5 ? "MET" : "NOT MET");
	return 0;
}
