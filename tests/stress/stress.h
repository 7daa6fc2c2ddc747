/*
 * stress.h - what the stress and fault tests (tests/stress/) share: the size
 * knob, the watchdog, the process's resources, and the device check over
 * many pages.  Same verdicts as every test (harness.h): 0 PASS, 77 SKIP,
 * 1 FAIL; roles report T_COHERENT / T_STALE like the standard scenario.
 *
 * STRESS_SCALE (a positive number, default 1) multiplies every loop count:
 * 1 is the long version `make check-stress` runs (the figures,
 * 10 000 forks for register-fork), CI runs a fraction of it.
 */
#ifndef T_STRESS_H
#define T_STRESS_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "safefork.h"

static inline double s_scale(void)
{
	const char *v = getenv("STRESS_SCALE");
	double s = v && *v ? strtod(v, NULL) : 1.0;
	return s > 0 ? s : 1.0;
}

/* base scaled by STRESS_SCALE, at least min. */
static inline long s_n(long base, long min)
{
	long n = (long)((double)base * s_scale());
	return n < min ? min : n;
}

/*
 * The watchdog: fail ("deadlock") after a bounded time.  Generous (the
 * machine is shared and slow), scaled with the work.
 */
static inline void s_watchdog(unsigned base_seconds)
{
	double s = s_scale();
	t_watchdog((unsigned)(base_seconds * (s < 1 ? 1 : s)) + 60);
}

/* Does page (4096 bytes) hold t_fill(buf, ..., gen)'s pattern at offset off of buf? */
static inline int s_page_is(const char *page, size_t off, uint32_t gen)
{
	const uint64_t *w = (const uint64_t *)page;
	for (size_t i = 0; i < 512; i++)
		if (w[i] != (((uint64_t)gen << 32) | (uint32_t)((off / 8 + i) * 2654435761u)))
			return 0;
	return 1;
}

/* Pages of buf whose device copy (seen) is not generation gen: what a DMA read would get wrong. */
static inline size_t s_stale_pages(const char *seen, size_t len, uint32_t gen)
{
	size_t stale = 0;
	for (size_t off = 0; off < len; off += 4096)
		stale += !s_page_is(seen + off, off, gen);
	return stale;
}

/* The library's counters (zero without it). */
static inline struct safefork_stats s_stats(void)
{
	struct safefork_stats st;
	t_stats(&st);
	return st;
}

static inline unsigned long long s_forks(const struct safefork_stats *st)
{
	unsigned long long n = 0;
	for (int i = 0; i < SAFEFORK_ENTRY_MAX; i++)
		n += st->forks[i];
	return n;
}

#endif
