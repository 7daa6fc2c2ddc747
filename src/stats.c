/* stats.c - safefork_stats(): the counters and the table's per-source totals. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "ranges.h"
#include "stats.h"

unsigned long long sf_counter[SF_C_NR];

_Static_assert(SF_C_ENTRIES == SAFEFORK_ENTRY_MAX, "entry counters");
_Static_assert(offsetof(struct safefork_stats, forks_shared) == SF_C_SHARED * 8, "layout");
_Static_assert(offsetof(struct safefork_stats, parent_ns) == SF_C_PARENT_NS * 8, "layout");
_Static_assert(offsetof(struct safefork_stats, ranges) == SF_C_NR * 8, "layout");
_Static_assert((int)SAFEFORK_SOURCE_URING == (int)SF_SRC_URING && (int)SF_SRC_NR <= (int)SAFEFORK_SOURCE_MAX, "sources");

unsigned long long sf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

void sf_stats_child_reset(void)
{
	memset(sf_counter, 0, sizeof(sf_counter));
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
		c[i] = __atomic_load_n(&sf_counter[i], __ATOMIC_RELAXED);
	memcpy(&s, c, sizeof(c)); /* the counters are the head of the struct (asserted above) */
	sf_ranges_stats(count, bytes);
	for (unsigned int i = 0; i < SF_SRC_NR; i++) {
		s.ranges[i] = count[i];
		s.bytes[i] = bytes[i];
	}
	memcpy(st, &s, size < sizeof(s) ? size : sizeof(s));
	errno = saved;
	return 0;
}
