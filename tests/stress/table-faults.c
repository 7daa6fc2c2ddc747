/*
 * table-faults: the library's own tables cannot grow.
 *   cap   - SAFEFORK_MAX_RANGES=64: 8 threads race to register 32 one-page
 *           ranges each.  Exactly 64 succeed, every other call fails with
 *           ENOMEM and changes nothing (an identical registration still
 *           counts up: it needs no slot); a fork protects exactly the
 *           registered pages (the device sees the parent's writes there
 *           and stale data on the others, which nothing protects); after
 *           unregistering, the freed slots take 64 new ranges.
 *   nomem - RLIMIT_AS leaves the table (slot chunks, hash index, the fork
 *           plan's scratch) no room to grow: registrations fail with
 *           ENOMEM at some point, the table stays consistent (each
 *           successful one unregisters, the failed ones are not there),
 *           and a fork protects everything registered before the failure.
 * The explicit API says nothing on failure: the program has the error.
 * Controls: without the library and with SAFEFORK_MODE=off every page the
 * device holds is stale.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include "stress.h"

#define PAGES 256
#define CAP 64
static char *arena;
static unsigned char registered[PAGES];
static int ok_count, enomem_count;

static void *racer(void *arg)
{
	int t = (int)(uintptr_t)arg;
	for (int j = 0; j < PAGES / 8; j++) {
		int p = t * (PAGES / 8) + j;
		if (t_register(arena + (size_t)p * 4096, 4096, 0) == 0) {
			registered[p] = 1;
			__atomic_fetch_add(&ok_count, 1, __ATOMIC_RELAXED);
		} else {
			T_CHECK(errno == ENOMEM, "register failed with %s, expected ENOMEM", strerror(errno));
			__atomic_fetch_add(&enomem_count, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

/* Fork, the parent writes, the device says which pages kept up. */
static int verdict(size_t npages, size_t *coherent_out)
{
	struct t_device dev;
	size_t len = npages * 4096, coherent = 0, bad = 0;

	t_fill(arena, len, 1);
	t_dev_attach(&dev, arena, len);
	pid_t pid = fork();
	if (pid == 0)
		_exit(t_gen_of(arena, len, NULL) == 1 ? 0 : 2);
	T_CHECK(pid > 0, "fork: %s", strerror(errno));
	t_fill(arena, len, 2);
	T_CHECK(t_wait(pid) == 0, "the child saw damaged data");
	char *seen = malloc(len);
	T_CHECK(seen != NULL, "malloc");
	t_dev_read(&dev, seen);
	t_dev_close(&dev);
	for (size_t p = 0; p < npages; p++) {
		int ok = s_page_is(seen + p * 4096, p * 4096, 2);
		coherent += ok;
		bad += ok != registered[p];
	}
	free(seen);
	*coherent_out = coherent;
	if (coherent == 0)
		return T_STALE;
	T_CHECK(bad == 0, "%zu pages protected or not against their registration", bad);
	return T_COHERENT;
}

static int role_cap(void)
{
	pthread_t th[8];
	size_t coherent;

	arena = t_map(PAGES * 4096ul);
	for (int i = 0; i < 8; i++)
		T_CHECK(pthread_create(&th[i], NULL, racer, (void *)(uintptr_t)i) == 0, "pthread_create");
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	int capped = t_lib_loaded();
	T_CHECK(ok_count == (capped ? CAP : PAGES) && ok_count + enomem_count == PAGES, "%d registrations succeeded, "
		"%d failed with ENOMEM; expected %d", ok_count, enomem_count, capped ? CAP : PAGES);
	if (capped) {
		int p = 0;
		while (!registered[p])
			p++;
		T_CHECK(t_register(arena + (size_t)p * 4096, 4096, 0) == 0, "an identical registration at the cap");
		T_CHECK(t_unregister(arena + (size_t)p * 4096, 4096) == 0, "and its unregistration");
	}
	int v = verdict(PAGES, &coherent);
	/* the slots come back */
	for (int p = 0; p < PAGES; p++)
		if (registered[p]) {
			T_CHECK(t_unregister(arena + (size_t)p * 4096, 4096) == 0, "unregister page %d", p);
			registered[p] = 0;
		}
	int again = 0;
	for (int p = 0; p < PAGES; p++)
		if (t_register(arena + (size_t)(PAGES - 1 - p) * 4096, 4096, 0) == 0)
			again++;
	T_CHECK(again == (capped ? CAP : PAGES), "%d registrations after unregistering everything", again);
	printf("figures: %d threads raced for %d slots: %d registrations, %d ENOMEM (faults injected); %zu of %d "
	       "device pages coherent\n", 8, CAP, ok_count, enomem_count, coherent, PAGES);
	return v;
}

static int role_nomem(void)
{
	size_t coherent, max = 1u << 20, n = 0;
	char *many = mmap(NULL, max * 64, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	T_CHECK(many != MAP_FAILED, "mmap");
	arena = t_map(16 * 4096ul);
	for (int p = 0; p < 16; p++) {
		T_CHECK(t_register(arena + p * 4096, 4096, 0) == 0, "register");
		registered[p] = 1;
	}
	/* warm-up fork: the staging pool exists before the limit */
	T_CHECK(verdict(16, &coherent) != 0, "warm-up");
	struct rlimit rl = { t_vm_size() + (1 << 20), RLIM_INFINITY };
	T_CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit");
	int e = 0;
	for (; n < max; n++)
		if (t_register(many + n * 64, 64, 0) != 0) {
			e = errno;
			break;
		}
	rl.rlim_cur = RLIM_INFINITY;
	setrlimit(RLIMIT_AS, &rl);
	if (!t_lib_loaded())
		T_CHECK(n == max, "registrations failed without the library");
	else {
		T_CHECK(n < max && e == ENOMEM, "no registration failed under RLIMIT_AS (%zu made; errno %d)", n, e);
		struct safefork_stats st = s_stats();
		T_CHECK(st.ranges[SAFEFORK_SOURCE_EXPLICIT] == 16 + n, "the table holds %llu ranges, expected %zu",
			st.ranges[SAFEFORK_SOURCE_EXPLICIT], 16 + n);
	}
	int v = verdict(16, &coherent);
	for (size_t i = 0; i < n; i++)
		T_CHECK(t_unregister(many + i * 64, 64) == 0, "unregister %zu of %zu", i, n);
	if (t_lib_loaded())
		T_CHECK(t_unregister(many + n * 64, 64) != 0 && errno == ENOENT, "the failed registration is in the table");
	printf("figures: %zu registrations before RLIMIT_AS stopped the table growing (1 fault injected); %zu of 16 "
	       "device pages coherent\n", n, coherent);
	return v;
}

int main(int argc, char **argv)
{
	char err[4096];

	if (argc > 1)
		return !strcmp(argv[1], "cap") ? role_cap() : role_nomem();
	static const char *roles[] = { "cap", "nomem" };
	for (int i = 0; i < 2; i++) {
		const char *env = i == 0 ? "SAFEFORK_MAX_RANGES=64" : NULL;
		int st = t_run(argv[0], roles[i], 1, "copy", env, err, sizeof(err));
		T_CHECK(st == T_COHERENT && !*err, "%s: status %d, stderr: %s", roles[i], st, err);
		st = t_run(argv[0], roles[i], 1, "off", env, NULL, 0);
		T_CHECK(st == T_STALE, "%s, SAFEFORK_MODE=off: status %d, expected stale", roles[i], st);
		st = t_run(argv[0], roles[i], 0, NULL, env, NULL, 0);
		T_CHECK(st == T_STALE, "%s without the library: status %d, expected stale", roles[i], st);
	}
	t_pass("full or unmappable tables: registrations fail with ENOMEM and change nothing; forks protect "
	       "exactly what was registered");
}
