/*
 * register-fork: 8 threads register and unregister random ranges (up to 32
 * live each, random lengths and policy flags, overlapping) over a churn
 * area while 2 threads fork in a loop, 10 000 forks in all at
 * STRESS_SCALE=1.  Each forking thread owns a registered region the device
 * (vmsplice) holds; it writes a new generation before every fork and again
 * right after it.  Every child checks its snapshot (its region's generation,
 * the whole churn area, an empty table of its own) and exits.
 * Afterwards: 0 stale pages on the device, every child fine, no deadlock
 * (watchdog), the table holds exactly the two stable regions again, and no
 * descriptor more than after the warm-up round, nor mappings (give or take
 * the few that merge or not with their neighbours as thread stacks and the
 * staging's control page land elsewhere).
 * Control: the same run with SAFEFORK_MODE=off and without the library
 * leaves stale pages on the device (a few hundred forks suffice).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "stress.h"

#define CHURNERS 8
#define FORKERS 2
#define LIVE_EACH 32
#define REGION (16 * 4096ul) /* per forking thread */
#define CHURN (1ul << 20)
#define CHURN_GEN 7

static char *stable, *churn;
static volatile int stop;
static long forks_each;
static int lib_active;
static unsigned long long live_max;

static const unsigned flag_choice[] = { 0, SAFEFORK_COPY, SAFEFORK_KERNEL_PIN, SAFEFORK_COPY | SAFEFORK_KERNEL_PIN };

static void *churner(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u;
	struct { char *a; size_t len; } held[LIVE_EACH];
	int n = 0;

	while (!stop) {
		if (n < LIVE_EACH && (n == 0 || rand_r(&seed) % 3)) {
			size_t len = 1 + (size_t)rand_r(&seed) % 65536;
			size_t off = (size_t)rand_r(&seed) % (CHURN - len);
			if (t_register(churn + off, len, flag_choice[rand_r(&seed) % 4]) != 0)
				t_fail("register %zu bytes: %s", len, strerror(errno));
			held[n].a = churn + off;
			held[n++].len = len;
		} else {
			int i = rand_r(&seed) % n;
			if (t_unregister(held[i].a, held[i].len) != 0)
				t_fail("unregister: %s", strerror(errno));
			held[i] = held[--n];
		}
	}
	while (n--)
		if (t_unregister(held[n].a, held[n].len) != 0)
			t_fail("unregister at the end: %s", strerror(errno));
	return NULL;
}

/* The child's checks: its own snapshot, the churn area as it always was, a table of its own. */
static int child(char *mine, uint32_t gen)
{
	size_t bad = 0;
	long g = t_gen_of(mine, REGION, &bad);
	if (g != (long)gen) {
		printf("child: its region holds generation %ld (bad at +%zu), expected %u\n", g, bad, gen);
		return 2;
	}
	if ((g = t_gen_of(churn, CHURN, &bad)) != CHURN_GEN) {
		printf("child: the churn area is damaged at +%zu (generation %ld)\n", bad, g);
		return 3;
	}
	struct safefork_stats st = s_stats();
	for (int i = 0; i < SAFEFORK_SOURCE_MAX; i++)
		if (lib_active && st.ranges[i]) {
			printf("child: inherited %llu ranges of source %d (a child's table starts empty)\n", st.ranges[i], i);
			return 4;
		}
	return 0;
}

static void *forker(void *arg)
{
	int id = (int)(uintptr_t)arg;
	char *mine = stable + (size_t)id * REGION;
	static uint32_t gens[FORKERS];

	for (long i = 0; i < forks_each; i++) {
		uint32_t g = 100 + (uint32_t)(gens[id]++ * FORKERS) + (uint32_t)id;
		t_fill(mine, REGION, g);
		pid_t pid = fork();
		if (pid == 0) {
			fflush(stdout);
			_exit(child(mine, g));
		}
		if (pid < 0)
			t_fail("fork: %s", strerror(errno));
		t_fill(mine, REGION, g + 1000000); /* the parent writes while the child may still share the pages */
		int st = t_wait(pid);
		if (st != 0)
			t_fail("forking thread %d, fork %ld: child status %d", id, i, st);
		struct safefork_stats s = s_stats();
		unsigned long long live = s.ranges[SAFEFORK_SOURCE_EXPLICIT];
		if (live > __atomic_load_n(&live_max, __ATOMIC_RELAXED))
			__atomic_store_n(&live_max, live, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void storm(long forks)
{
	pthread_t c[CHURNERS], f[FORKERS];

	stop = 0;
	forks_each = forks / FORKERS;
	for (int i = 0; i < CHURNERS; i++)
		T_CHECK(pthread_create(&c[i], NULL, churner, (void *)(uintptr_t)(i + 1)) == 0, "pthread_create");
	for (int i = 0; i < FORKERS; i++)
		T_CHECK(pthread_create(&f[i], NULL, forker, (void *)(uintptr_t)i) == 0, "pthread_create");
	for (int i = 0; i < FORKERS; i++)
		pthread_join(f[i], NULL);
	stop = 1;
	for (int i = 0; i < CHURNERS; i++)
		pthread_join(c[i], NULL);
}

static int role(long forks)
{
	struct t_device dev;
	unsigned long long t0 = 0;
	struct timespec ts;

	lib_active = t_lib_active();
	s_watchdog(900);
	stable = t_map(FORKERS * REGION);
	churn = t_map(CHURN);
	t_fill(churn, CHURN, CHURN_GEN);
	for (int i = 0; i < FORKERS; i++) {
		t_fill(stable + i * REGION, REGION, 1);
		T_CHECK(t_register(stable + i * REGION, REGION, 0) == 0, "register the stable region");
	}
	t_dev_attach(&dev, stable, FORKERS * REGION);
	struct safefork_stats before = s_stats();

	/* Round 0 warms up what legitimately stays (cached thread stacks, the staging pool, scratch). */
	long warm = forks / 50 < 20 ? 20 : forks / 50;
	storm(warm);
	int vmas = t_vma_count(), fds = t_fd_count();
	static struct t_map_ent m0[512], m1[512];
	int n0 = t_maps_read(m0, 512);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
	storm(forks - warm);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double secs = ((unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec - t0) / 1e9;

	int vmas_after = t_vma_count(), fds_after = t_fd_count();
	/* A leak would grow with the forks; a mapping or two come and go as neighbours merge or not. */
	if (vmas_after > vmas + 4) {
		int n1 = t_maps_read(m1, 512);
		for (int i = 0; i < n1; i++) {
			int old = 0;
			for (int j = 0; j < n0 && !old; j++)
				old = !strcmp(m0[j].line, m1[i].line);
			if (!old)
				printf("new mapping: %s\n", m1[i].line);
		}
		t_fail("mappings grew from %d to %d", vmas, vmas_after);
	}
	T_CHECK(fds_after <= fds, "descriptors grew from %d to %d", fds, fds_after);
	struct safefork_stats st = s_stats();
	if (lib_active)
		T_CHECK(st.ranges[SAFEFORK_SOURCE_EXPLICIT] == FORKERS &&
				st.bytes[SAFEFORK_SOURCE_EXPLICIT] == FORKERS * REGION,
			"after the storm the table holds %llu ranges (%llu bytes), expected the %d stable ones",
			st.ranges[SAFEFORK_SOURCE_EXPLICIT], st.bytes[SAFEFORK_SOURCE_EXPLICIT], FORKERS);

	/* The device: after the last writes, does it see what the parent has? */
	t_fill(stable, FORKERS * REGION, 999);
	char *seen = malloc(FORKERS * REGION);
	T_CHECK(seen != NULL, "malloc");
	t_dev_read(&dev, seen);
	size_t stale = s_stale_pages(seen, FORKERS * REGION, 999);
	free(seen);
	printf("figures: %ld forks from %d threads against %d registering threads; up to %llu live ranges; "
	       "%llu forks protected, %llu bytes copied, %llu fallbacks; %zu of %lu device pages stale; "
	       "%d mappings, %d descriptors before and after; %.1f s (%.0f forks/s)\n",
	       forks, FORKERS, CHURNERS, live_max, st.forks_protected - before.forks_protected,
	       st.bytes_copied - before.bytes_copied, st.fallbacks, stale, FORKERS * REGION / 4096, vmas_after,
	       fds_after, secs, (double)(forks - warm) / secs);
	fflush(stdout);
	return stale ? T_STALE : T_COHERENT;
}

int main(int argc, char **argv)
{
	long forks = s_n(10000, 100), control = forks < 400 ? forks : 400;

	if (argc > 1)
		return role(!strcmp(argv[1], "control") ? control : forks);
	int bad = 0;
	bad |= t_expect(argv[0], "storm", 1, "copy", T_COHERENT);
	bad |= t_expect(argv[0], "storm", 1, NULL, T_COHERENT);
	/* controls: the same program, fewer forks */
	bad |= t_expect(argv[0], "control", 1, "off", T_STALE);
	bad |= t_expect(argv[0], "control", 0, NULL, T_STALE);
	if (bad)
		return T_FAIL;
	t_pass("%ld forks against concurrent registrations: every child intact, the device coherent; stale "
	       "without protection", forks);
}
