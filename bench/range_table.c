/*
 * range_table.c - the range table (src/ranges.c, linked in) at scale:
 * nanoseconds per insert, remove, lookup and per range of the fork path's
 * snapshot with 1, 1 000 and 100 000 live ranges.
 *
 *   insert   sf_ranges_add of a new range (random page-aligned address)
 *   remove   sf_ranges_del of it again (the table is back at n live)
 *   lookup   hit: sf_ranges_add of a live range's exact key (counts up)
 *            and sf_ranges_del of it (counts down), per call; miss:
 *            sf_ranges_del of a key that is not there
 *   snapshot sf_ranges_snapshot() of the whole table,
 *            per live range (what a fork reads)
 *
 * Medians of --rounds interleaved rounds of --ops operations each.  Target
 * (printed, not asserted): O(log n) growth and < 1 us per operation at
 * 100 000 live ranges.
 *
 * Usage: range_table [--ops=20000] [--rounds=5] [--quick]
 * (BENCH_QUICK=1: 1, 1 000, 10 000 live ranges, 2 000 operations, 3 rounds)
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "median.h"

#include "ranges.h"

#define MAX_ROUNDS 64
#define NSIZES 3

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A random page-aligned range of 1..16 pages in a 1 TiB space (never dereferenced). */
static void random_range(uintptr_t *s, uintptr_t *e)
{
	*s = (uintptr_t)0x100000000000ull + (uintptr_t)(rnd() % (1ull << 28)) * 4096;
	*e = *s + 4096 * (1 + rnd() % 16);
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "range_table: %s: %s\n", what, strerror(-rc));
	exit(1);
}

enum { M_INSERT, M_REMOVE, M_HIT, M_MISS, M_SNAP, NMEAS };
static const char *const meas_name[NMEAS] = { "insert", "remove", "lookup hit", "lookup miss", "snapshot/range" };

int main(int argc, char **argv)
{
	size_t sizes[NSIZES] = { 1, 1000, 100000 };
	int ops = 20000, rounds = 5;
	const char *q = getenv("BENCH_QUICK");
	int quick = q && *q && strcmp(q, "0");

	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--ops=", 6))
			ops = atoi(argv[i] + 6);
		else if (!strncmp(argv[i], "--rounds=", 9))
			rounds = atoi(argv[i] + 9);
		else if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else {
			fprintf(stderr, "usage: range_table [--ops=20000] [--rounds=5] [--quick]\n");
			return 2;
		}
	}
	if (quick) {
		sizes[2] = 10000;
		ops = 2000;
		rounds = 3;
	}
	if (ops < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "range_table: --ops >= 1, 1 <= --rounds <= %d\n", MAX_ROUNDS);
		return 2;
	}

	size_t maxn = sizes[NSIZES - 1];
	uintptr_t *ls = calloc(maxn, sizeof(*ls)), *le = calloc(maxn, sizeof(*le));
	uintptr_t *ns = calloc((size_t)ops, sizeof(*ns)), *ne = calloc((size_t)ops, sizeof(*ne));
	struct sf_range_view *view = calloc(maxn + 16, sizeof(*view));
	if (!ls || !le || !ns || !ne || !view) {
		perror("range_table: calloc");
		return 1;
	}
	static double v[NSIZES][NMEAS][MAX_ROUNDS];
	size_t live = 0;

	printf("range_table: src/ranges.c linked in; ns per operation, median of %d rounds of %d operations\n", rounds,
	       ops);
	for (int si = 0; si < NSIZES; si++) {
		/* grow the table to sizes[si] live ranges */
		while (live < sizes[si]) {
			random_range(&ls[live], &le[live]);
			int rc = sf_ranges_add(ls[live], le[live], 0, SF_SRC_EXPLICIT);
			if (rc < 0)
				die("sf_ranges_add", rc);
			live++;
		}
		for (int r = 0; r < rounds; r++) {
			for (int i = 0; i < ops; i++)
				random_range(&ns[i], &ne[i]);
			uint64_t t0 = now_ns();
			for (int i = 0; i < ops; i++) {
				int rc = sf_ranges_add(ns[i], ne[i], 0, SF_SRC_EXPLICIT);
				if (rc < 0)
					die("sf_ranges_add", rc);
			}
			uint64_t t1 = now_ns();
			for (int i = 0; i < ops; i++) {
				int rc = sf_ranges_del(ns[i], ne[i]);
				if (rc < 0)
					die("sf_ranges_del", rc);
			}
			uint64_t t2 = now_ns();
			/* hits: a live range's exact key, added (counts up) and deleted (counts down) */
			for (int i = 0; i < ops; i++) {
				size_t k = (size_t)(rnd() % live);
				if (sf_ranges_add(ls[k], le[k], 0, SF_SRC_EXPLICIT) < 0 || sf_ranges_del(ls[k], le[k]) < 0)
					die("lookup hit", -ENOENT);
			}
			uint64_t t3 = now_ns();
			for (int i = 0; i < ops; i++)
				if (sf_ranges_del(ns[i] + 1, ne[i]) != -ENOENT)
					die("lookup miss", -EEXIST);
			uint64_t t4 = now_ns();
			int snaps = 0;
			uint64_t t5 = now_ns(), t6;
			do {
				size_t got = sf_ranges_snapshot(view, maxn + 16);
				if (got != sf_ranges_live()) {
					fprintf(stderr, "range_table: snapshot of %zu ranges, %zu live\n", got, sf_ranges_live());
					return 1;
				}
				snaps++;
				t6 = now_ns();
			} while (t6 - t5 < 2000000 && snaps < 1000);
			v[si][M_INSERT][r] = (double)(t1 - t0) / ops;
			v[si][M_REMOVE][r] = (double)(t2 - t1) / ops;
			v[si][M_HIT][r] = (double)(t3 - t2) / (2.0 * ops);
			v[si][M_MISS][r] = (double)(t4 - t3) / ops;
			v[si][M_SNAP][r] = (double)(t6 - t5) / snaps / (double)live;
		}
	}

	double m[NSIZES][NMEAS];
	printf("\n%-16s", "live ranges");
	for (int si = 0; si < NSIZES; si++)
		printf(" %10zu", sizes[si]);
	printf("   %s/1\n", "growth");
	for (int k = 0; k < NMEAS; k++) {
		printf("%-16s", meas_name[k]);
		for (int si = 0; si < NSIZES; si++) {
			m[si][k] = median(v[si][k], rounds);
			printf(" %10.1f", m[si][k]);
		}
		printf("   %5.2fx\n", m[NSIZES - 1][k] / m[0][k]);
	}
	printf("\ntargets (printed, not asserted):\n");
	int met = 0;
	for (int k = M_INSERT; k <= M_MISS; k++) {
		int ok = m[NSIZES - 1][k] < 1000;
		met += ok;
		printf("  %-12s < 1 us at %zu live ranges: %.1f ns  %s\n", meas_name[k], sizes[NSIZES - 1],
		       m[NSIZES - 1][k], ok ? "MET" : "NOT MET");
	}
	/* O(log n): from 1 to N, at most about log2(N) times the cost of one level, with slack for caches */
	for (int k = M_INSERT; k <= M_MISS; k++) {
		double growth = m[NSIZES - 1][k] / (m[0][k] > 1 ? m[0][k] : 1);
		double bound = 2.0 * 17; /* log2(100 000) ~ 17 */
		int ok = growth <= bound;
		met += ok;
		printf("  %-12s grows at most O(log n) (x%.0f from 1 to %zu): x%.2f  %s\n", meas_name[k], bound,
		       sizes[NSIZES - 1], growth, ok ? "MET" : "NOT MET");
	}
	printf("  %d of 8 targets met\n", met);
	return 0;
}
