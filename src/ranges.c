/*
 * ranges.c - the table of registered ranges.
 *
 * Writers (register/unregister) serialise on one lock and keep an exact-key
 * hash index.  The fork path never takes that lock: it scans the slot array,
 * which writers update slot by slot under a per-slot sequence counter, so a
 * fork from a signal handler that interrupted a writer, or a fork racing a
 * writer on another thread, reads a consistent table without waiting.
 *
 * All memory is mapped here with mmap(2): nothing depends on malloc, which
 * the fork path and the child must not call.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "common.h"
#include "lock.h"
#include "ranges.h"
#include "sysmem.h"

#define SLOTS_PER_CHUNK 4096u
#define MAX_CHUNKS 1024u /* 4M registrations */
#define LIVE 0x80000000u

struct slot {
	unsigned int seq;   /* odd while a writer changes start/end/flags/source */
	unsigned int flags; /* LIVE | safefork.h flags */
	uintptr_t start, end;
	unsigned int source;
	unsigned int refs;      /* writer-only: identical registrations */
	unsigned int next_free; /* writer-only: free list, index + 1 */
	unsigned int pad;
};

static struct slot *chunks[MAX_CHUNKS];
static unsigned int nchunks;   /* published with release */
static unsigned int high_water; /* slots ever used; published with release */
static unsigned int free_head;  /* index + 1, writer-only */
static size_t live, cap_limit;
static size_t src_count[SF_SRC_NR], src_bytes[SF_SRC_NR];
static sf_lock_t wlock = SF_LOCK_INIT;
/*
 * This thread holds wlock: a signal handler that registers or unregisters
 * on the same thread gets -EDEADLK instead of waiting for itself (writers
 * do not block signals: registration makes no system call).
 */
static SF_TLS int t_writing;

static int wlock_take(void)
{
	if (t_writing)
		return -EDEADLK;
	sf_lock(&wlock);
	t_writing = 1;
	return 0;
}

static void wlock_drop(void)
{
	t_writing = 0;
	sf_unlock(&wlock);
}

/* Hash index (start, end) -> slot index + 1; linear probing, backward-shift delete. */
static unsigned int *htab;
static size_t hsize, hused;

static struct slot *slot_at(unsigned int idx)
{
	return &chunks[idx / SLOTS_PER_CHUNK][idx % SLOTS_PER_CHUNK];
}

static size_t hash_key(uintptr_t start, uintptr_t end)
{
	uint64_t h = (uint64_t)start * 0x9E3779B97F4A7C15ull ^ ((uint64_t)end + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
	return (size_t)(h ^ (h >> 29));
}


static void hash_insert(unsigned int *tab, size_t size, unsigned int idx)
{
	struct slot *s = slot_at(idx);
	size_t i = hash_key(s->start, s->end) & (size - 1);

	while (tab[i])
		i = (i + 1) & (size - 1);
	tab[i] = idx + 1;
}

static int hash_grow(void)
{
	size_t nsize = hsize ? hsize * 2 : 1024;
	unsigned int *ntab = sf_map(nsize * sizeof(*ntab));

	if (!ntab)
		return -ENOMEM;
	for (size_t i = 0; i < hsize; i++)
		if (htab[i])
			hash_insert(ntab, nsize, htab[i] - 1);
	if (htab)
		sf_munmap(htab, hsize * sizeof(*htab));
	htab = ntab;
	hsize = nsize;
	return 0;
}

/* Position in htab of a slot with this key (and, if want_flags >= 0, these flags/source), or -1. */
static long hash_find(uintptr_t start, uintptr_t end, long want_flags, unsigned int source)
{
	if (!hsize)
		return -1;
	for (size_t i = hash_key(start, end) & (hsize - 1); htab[i]; i = (i + 1) & (hsize - 1)) {
		struct slot *s = slot_at(htab[i] - 1);
		if (s->start == start && s->end == end &&
		    (want_flags < 0 || ((s->flags & ~LIVE) == (unsigned long)want_flags && s->source == source)))
			return (long)i;
	}
	return -1;
}

static void hash_remove_at(size_t i)
{
	size_t j = i;

	htab[i] = 0;
	for (;;) {
		j = (j + 1) & (hsize - 1);
		if (!htab[j])
			break;
		struct slot *s = slot_at(htab[j] - 1);
		size_t home = hash_key(s->start, s->end) & (hsize - 1);
		/* Move j back into the hole at i unless its home lies cyclically in (i, j]. */
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			htab[i] = htab[j];
			htab[j] = 0;
			i = j;
		}
	}
	hused--;
}

static int slot_alloc(unsigned int *idx)
{
	if (free_head) {
		*idx = free_head - 1;
		free_head = slot_at(*idx)->next_free;
		return 0;
	}
	if (high_water == nchunks * SLOTS_PER_CHUNK) {
		if (nchunks == MAX_CHUNKS)
			return -ENOMEM;
		struct slot *c = sf_map(SLOTS_PER_CHUNK * sizeof(struct slot));
		if (!c)
			return -ENOMEM;
		__atomic_store_n(&chunks[nchunks], c, __ATOMIC_RELEASE);
		__atomic_store_n(&nchunks, nchunks + 1, __ATOMIC_RELEASE);
	}
	*idx = high_water;
	return 0;
}

/* Seqlock write section: readers skip the slot while it is odd. */
static void slot_publish(struct slot *s, uintptr_t start, uintptr_t end, unsigned int flags, unsigned int source)
{
	unsigned int seq = s->seq;

	__atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&s->start, start, __ATOMIC_RELAXED);
	__atomic_store_n(&s->end, end, __ATOMIC_RELAXED);
	__atomic_store_n(&s->source, source, __ATOMIC_RELAXED);
	__atomic_store_n(&s->flags, flags, __ATOMIC_RELAXED);
	__atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
}

int sf_ranges_add(uintptr_t start, uintptr_t end, unsigned int flags, unsigned int source)
{
	int rc = 0;
	long pos;
	unsigned int idx;

	if ((rc = wlock_take()) < 0)
		return rc;
	pos = hash_find(start, end, (long)flags, source);
	if (pos >= 0) {
		slot_at(htab[pos] - 1)->refs++;
		goto out_count;
	}
	if (cap_limit && live >= cap_limit) {
		rc = -ENOMEM;
		goto out;
	}
	if ((hused + 1) * 2 > hsize && (rc = hash_grow()) < 0)
		goto out;
	if ((rc = slot_alloc(&idx)) < 0)
		goto out;
	struct slot *s = slot_at(idx);
	s->refs = 1;
	s->next_free = 0;
	slot_publish(s, start, end, flags | LIVE, source);
	if (idx == high_water)
		__atomic_store_n(&high_water, high_water + 1, __ATOMIC_RELEASE);
	hash_insert(htab, hsize, idx);
	hused++;
	__atomic_store_n(&live, live + 1, __ATOMIC_RELAXED);
out_count:
	__atomic_store_n(&src_count[source], src_count[source] + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&src_bytes[source], src_bytes[source] + (end - start), __ATOMIC_RELAXED);
out:
	wlock_drop();
	return rc;
}

static int del(uintptr_t start, uintptr_t end, long want_flags, unsigned int source)
{
	int rc = 0;
	long pos;

	if ((rc = wlock_take()) < 0)
		return rc;
	pos = hash_find(start, end, want_flags, source);
	if (pos < 0) {
		rc = -ENOENT;
		goto out;
	}
	unsigned int idx = htab[pos] - 1;
	struct slot *s = slot_at(idx);
	__atomic_store_n(&src_count[s->source], src_count[s->source] - 1, __ATOMIC_RELAXED);
	__atomic_store_n(&src_bytes[s->source], src_bytes[s->source] - (end - start), __ATOMIC_RELAXED);
	if (--s->refs == 0) {
		slot_publish(s, 0, 0, 0, 0);
		hash_remove_at((size_t)pos);
		s->next_free = free_head;
		free_head = idx + 1;
		__atomic_store_n(&live, live - 1, __ATOMIC_RELAXED);
	}
out:
	wlock_drop();
	return rc;
}

int sf_ranges_del(uintptr_t start, uintptr_t end)
{
	return del(start, end, -1, 0);
}

int sf_ranges_del_exact(uintptr_t start, uintptr_t end, unsigned int flags, unsigned int source)
{
	return del(start, end, (long)flags, source);
}

size_t sf_ranges_snapshot(struct sf_range_view *out, size_t cap)
{
	unsigned int n = __atomic_load_n(&high_water, __ATOMIC_ACQUIRE);
	size_t k = 0;

	for (unsigned int idx = 0; idx < n; idx++) {
		struct slot *c = __atomic_load_n(&chunks[idx / SLOTS_PER_CHUNK], __ATOMIC_ACQUIRE);
		struct slot *s = &c[idx % SLOTS_PER_CHUNK];
		unsigned int seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
		if (seq & 1)
			continue;
		unsigned int flags = __atomic_load_n(&s->flags, __ATOMIC_RELAXED);
		if (!(flags & LIVE))
			continue;
		struct sf_range_view v = {
			__atomic_load_n(&s->start, __ATOMIC_RELAXED),
			__atomic_load_n(&s->end, __ATOMIC_RELAXED),
			flags & ~LIVE,
			__atomic_load_n(&s->source, __ATOMIC_RELAXED),
		};
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) != seq)
			continue;
		if (k < cap)
			out[k] = v;
		k++;
	}
	return k;
}

size_t sf_ranges_live(void)
{
	return __atomic_load_n(&live, __ATOMIC_RELAXED);
}

void sf_ranges_stats(size_t count[SF_SRC_NR], size_t bytes[SF_SRC_NR])
{
	/* No lock: safefork_stats() is async-signal-safe; each number is exact, the pair may lag a writer. */
	for (unsigned int i = 0; i < SF_SRC_NR; i++) {
		count[i] = __atomic_load_n(&src_count[i], __ATOMIC_RELAXED);
		bytes[i] = __atomic_load_n(&src_bytes[i], __ATOMIC_RELAXED);
	}
}

void sf_ranges_set_cap(size_t cap)
{
	cap_limit = cap;
}

void sf_ranges_child_reset(void)
{
	for (unsigned int c = 0; c < nchunks; c++) {
		sf_munmap(chunks[c], SLOTS_PER_CHUNK * sizeof(struct slot));
		chunks[c] = NULL;
	}
	if (htab)
		sf_munmap(htab, hsize * sizeof(*htab));
	htab = NULL;
	hsize = hused = 0;
	nchunks = high_water = free_head = 0;
	live = 0;
	memset(src_count, 0, sizeof(src_count));
	memset(src_bytes, 0, sizeof(src_bytes));
	sf_lock_reset(&wlock);
	t_writing = 0;
}
