/* stats.c - safefork_stats(): the counters and the table's per-source totals. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "common.h"
#include "ranges.h"
#include "stats.h"
#include "sysmem.h"

/* Until sf_stats_init (and if the shared page cannot be had): private memory. */
static unsigned long long boot_counters[SF_C_NR];
unsigned long long *sf_counter = boot_counters;

_Static_assert(SF_C_ENTRIES == SAFEFORK_ENTRY_MAX, "entry counters");
_Static_assert(offsetof(struct safefork_stats, forks_shared) == (size_t)SF_C_SHARED * 8, "layout");
_Static_assert(offsetof(struct safefork_stats, parent_ns) == (size_t)SF_C_PARENT_NS * 8, "layout");
_Static_assert(offsetof(struct safefork_stats, ranges) == (size_t)SF_C_HEAD * 8, "layout");
_Static_assert((int)SAFEFORK_SOURCE_URING == (int)SF_SRC_URING && (int)SF_SRC_NR <= (int)SAFEFORK_SOURCE_MAX, "sources");

unsigned long long sf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

void sf_stats_init(void)
{
	void *p = sf_mmap(NULL, sf_page_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	memcpy(p, boot_counters, sizeof(boot_counters));
	__atomic_store_n(&sf_counter, p, __ATOMIC_RELEASE);
}

void sf_stats_child_reset(void)
{
	unsigned long long *old = sf_counter;

	memset(boot_counters, 0, sizeof(boot_counters));
	if (old == boot_counters)
		return;
	/* A fresh page in the same place (the child's mappings stay where the parent's were). */
	void *p = sf_mmap(old, sf_page_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	__atomic_store_n(&sf_counter, p == (void *)old ? old : boot_counters, __ATOMIC_RELEASE);
}

SF_EXPORT int safefork_stats(struct safefork_stats *st, size_t size)
{
	struct safefork_stats s;
	unsigned long long c[SF_C_NR];
	size_t count[SF_SRC_NR], bytes[SF_SRC_NR];
	int saved = errno;

	if (!st || !size) {
		errno = EINVAL;
		return -1;
	}
	memset(&s, 0, sizeof(s));
	for (unsigned int i = 0; i < SF_C_NR; i++)
		c[i] = __atomic_load_n(&__atomic_load_n(&sf_counter, __ATOMIC_ACQUIRE)[i], __ATOMIC_RELAXED);
	memcpy(&s, c, SF_C_HEAD * sizeof(c[0])); /* the head of the struct (asserted above) */
	s.child_ns = c[SF_C_CHILD_NS];
	sf_ranges_stats(count, bytes);
	for (unsigned int i = 0; i < SF_SRC_NR; i++) {
		s.ranges[i] = count[i];
		s.bytes[i] = bytes[i];
	}
	memcpy(st, &s, size < sizeof(s) ? size : sizeof(s));
	errno = saved;
	return 0;
}
