/*
 * fuzz-ranges: libFuzzer target for the range table, through src/ranges.h
 * only (the table's internals may change; its contract may not).  Random
 * sequences of add / del / del_exact / snapshot / set_cap / child_reset,
 * including bulk runs that make the table grow, are replayed on the table
 * and on a plain array (the reference model); after every step the table
 * must agree with the model: return codes, sf_ranges_live(), per-source
 * counts and bytes (sf_ranges_stats), and the snapshot, which must hold
 * each record once, never write past its cap, and return the full count.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ranges.h"

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz-ranges: step %u: ", step);   \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			abort();                                           \
		}                                                          \
	} while (0)

struct rec {
	uintptr_t start, end;
	unsigned flags, source, refs;
};

#define MAX_RECS 20000
static struct rec model[MAX_RECS], trial[MAX_RECS];
static size_t nrec, ntrial, cap;
static unsigned step;
static struct sf_range_view *snap;
static size_t snap_room;

/* ---- input ---- */
static const uint8_t *in;
static size_t in_left;

static unsigned byte(void)
{
	if (!in_left)
		return 0;
	in_left--;
	return *in++;
}

static uint64_t word(void)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | byte();
	return v;
}

/* Few distinct addresses so keys collide often; now and then any address. */
static void range(uintptr_t *start, uintptr_t *end)
{
	unsigned b = byte();
	if (b == 0xff) {
		uintptr_t s = (uintptr_t)word(), len = (uintptr_t)(word() % (1u << 20)) + 1;
		if (s > UINTPTR_MAX - len)
			s = UINTPTR_MAX - len;
		*start = s;
		*end = s + len;
		return;
	}
	*start = 0x10000 + (uintptr_t)(b & 0x0f) * 4096 + (b & 0x10 ? 100 : 0);
	*end = *start + 1 + (uintptr_t)(b >> 5) * 2048;
}

static unsigned flags_src(unsigned *source)
{
	unsigned b = byte();
	static const unsigned fl[] = { 0, 1, 2, 4, 8, 0x10, 0x20, SF_RANGE_NOPIN };
	*source = (b >> 3) % SF_SRC_NR;
	return fl[b & 7];
}

/* ---- the model ---- */
static long find(const struct rec *m, size_t n, uintptr_t s, uintptr_t e, long flags, unsigned src)
{
	for (size_t i = 0; i < n; i++)
		if (m[i].start == s && m[i].end == e && (flags < 0 || (m[i].flags == (unsigned)flags && m[i].source == src)))
			return (long)i;
	return -1;
}

static void drop_ref(struct rec *m, size_t *n, size_t i)
{
	if (--m[i].refs == 0)
		m[i] = m[--*n];
}

static int cmp_view(const void *a, const void *b)
{
	const struct sf_range_view *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	if (x->flags != y->flags)
		return x->flags < y->flags ? -1 : 1;
	return x->source < y->source ? -1 : x->source > y->source;
}

/* Does the table look like m[0..n)?  (quiet: for telling candidates apart) */
static const char *differs(const struct rec *m, size_t n)
{
	size_t count[SF_SRC_NR] = { 0 }, bytes[SF_SRC_NR] = { 0 }, c[SF_SRC_NR], b[SF_SRC_NR];
	static struct sf_range_view want[MAX_RECS];

	if (sf_ranges_live() != n)
		return "sf_ranges_live() differs from the model";
	for (size_t i = 0; i < n; i++) {
		count[m[i].source] += m[i].refs;
		bytes[m[i].source] += m[i].refs * (m[i].end - m[i].start);
		want[i] = (struct sf_range_view){ m[i].start, m[i].end, m[i].flags, m[i].source };
	}
	sf_ranges_stats(c, b);
	if (memcmp(c, count, sizeof(c)) != 0 || memcmp(b, bytes, sizeof(b)) != 0)
		return "sf_ranges_stats() differs from the model";
	if (snap_room < n + 1) {
		snap_room = 2 * n + 64;
		snap = realloc(snap, snap_room * sizeof(*snap));
		if (!snap)
			abort();
	}
	if (sf_ranges_snapshot(snap, snap_room) != n)
		return "sf_ranges_snapshot() count differs from the model";
	qsort(snap, n, sizeof(*snap), cmp_view);
	qsort(want, n, sizeof(*want), cmp_view);
	for (size_t i = 0; i < n; i++)
		if (cmp_view(&snap[i], &want[i]))
			return "the snapshot's records differ from the model's";
	return NULL;
}

/* live count and statistics only (cheap) */
static void check_counts(void)
{
	size_t count[SF_SRC_NR] = { 0 }, bytes[SF_SRC_NR] = { 0 }, c[SF_SRC_NR], b[SF_SRC_NR];

	CHECK(sf_ranges_live() == nrec, "sf_ranges_live() %zu, model %zu", sf_ranges_live(), nrec);
	for (size_t i = 0; i < nrec; i++) {
		count[model[i].source] += model[i].refs;
		bytes[model[i].source] += model[i].refs * (model[i].end - model[i].start);
	}
	sf_ranges_stats(c, b);
	CHECK(!memcmp(c, count, sizeof(c)) && !memcmp(b, bytes, sizeof(b)), "sf_ranges_stats() differs from the model");
}

static int cmp_rec(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	struct sf_range_view vx = { x->start, x->end, x->flags, x->source }, vy = { y->start, y->end, y->flags, y->source };
	return cmp_view(&vx, &vy);
}

static void op_add(uintptr_t s, uintptr_t e, unsigned flags, unsigned src);

/* n adds of distinct ranges base + i * 64 (length len): the model is searched by bisection. */
static void bulk_add(uintptr_t base, unsigned n, unsigned len, unsigned flags, unsigned src)
{
	size_t before = nrec;
	if (n > MAX_RECS - nrec)
		n = (unsigned)(MAX_RECS - nrec); /* the model's own limit, not the table's */
	memcpy(trial, model, nrec * sizeof(*model));
	for (size_t i = 0; i < before; i++)
		trial[i].refs = (unsigned)i; /* where it is in the model */
	qsort(trial, before, sizeof(*trial), cmp_rec);
	for (unsigned i = 0; i < n; i++) {
		struct rec key = { base + (uintptr_t)i * 64, base + (uintptr_t)i * 64 + len, flags, src, 0 };
		struct rec *hit = bsearch(&key, trial, before, sizeof(*trial), cmp_rec);
		int rc = sf_ranges_add(key.start, key.end, flags, src), want = 0;
		if (hit)
			model[hit->refs].refs++;
		else if (cap && nrec >= cap)
			want = -ENOMEM;
		else
			model[nrec++] = (struct rec){ key.start, key.end, flags, src, 1 };
		CHECK(rc == want, "bulk add %u: %d, want %d", i, rc, want);
	}
}

static void check_model(void)
{
	const char *why = differs(model, nrec);
	CHECK(!why, "%s (%zu records)", why, nrec);
}

/* A snapshot with a short buffer: the full count, only cap entries written, each a model record. */
static void check_short_snapshot(size_t room)
{
	struct sf_range_view *v = malloc((room + 1) * sizeof(*v));
	if (!v)
		abort();
	memset(v, 0xa5, (room + 1) * sizeof(*v));
	size_t k = sf_ranges_snapshot(room ? v : NULL, room);
	CHECK(k == nrec, "snapshot into %zu returned %zu, model has %zu", room, k, nrec);
	for (size_t i = 0; i < room && i < k; i++)
		CHECK(find(model, nrec, v[i].start, v[i].end, v[i].flags, v[i].source) >= 0,
		      "snapshot entry %zu is no model record", i);
	const unsigned char *canary = (const unsigned char *)&v[k < room ? k : room];
	for (size_t i = 0; i < sizeof(*v); i++)
		CHECK(canary[i] == 0xa5, "snapshot wrote past its %zu entries", room);
	free(v);
}

static void op_add(uintptr_t s, uintptr_t e, unsigned flags, unsigned src)
{
	long i = find(model, nrec, s, e, flags, src);
	if (i < 0 && nrec == MAX_RECS)
		return; /* the model's own limit, not the table's */
	int rc = sf_ranges_add(s, e, flags, src), want = 0;

	if (i >= 0)
		model[i].refs++;
	else if (cap && nrec >= cap)
		want = -ENOMEM;
	else
		model[nrec++] = (struct rec){ s, e, flags, src, 1 };
	CHECK(rc == want, "add [%#lx,%#lx) flags %#x source %u: %d, want %d", (unsigned long)s, (unsigned long)e, flags,
	      src, rc, want);
}

static void op_del_exact(uintptr_t s, uintptr_t e, unsigned flags, unsigned src)
{
	long i = find(model, nrec, s, e, flags, src);
	int rc = sf_ranges_del_exact(s, e, flags, src);

	CHECK(rc == (i >= 0 ? 0 : -ENOENT), "del_exact [%#lx,%#lx) flags %#x source %u: %d", (unsigned long)s,
	      (unsigned long)e, flags, src, rc);
	if (i >= 0)
		drop_ref(model, &nrec, (size_t)i);
}

/*
 * sf_ranges_del removes one of the registrations with these bounds, which
 * one is the table's business: find the one whose removal explains what the
 * table shows.  Two with the same source and more than one reference each
 * would look alike, and the model would go astray later: then delete exactly.
 */
static void op_del(uintptr_t s, uintptr_t e)
{
	size_t cand[64], nc = 0;
	for (size_t i = 0; i < nrec && nc < 64; i++)
		if (model[i].start == s && model[i].end == e)
			cand[nc++] = i;
	for (size_t a = 0; a < nc; a++)
		for (size_t b = a + 1; b < nc; b++)
			if (model[cand[a]].source == model[cand[b]].source && model[cand[a]].refs > 1 &&
			    model[cand[b]].refs > 1) {
				op_del_exact(s, e, model[cand[a]].flags, model[cand[a]].source);
				return;
			}
	int rc = sf_ranges_del(s, e);
	CHECK(rc == (nc ? 0 : -ENOENT), "del [%#lx,%#lx): %d with %zu candidates", (unsigned long)s, (unsigned long)e,
	      rc, nc);
	if (nc <= 1) {
		if (nc)
			drop_ref(model, &nrec, cand[0]);
		return;
	}
	for (size_t c = 0; c < nc; c++) {
		memcpy(trial, model, nrec * sizeof(*model));
		ntrial = nrec;
		drop_ref(trial, &ntrial, cand[c]);
		if (!differs(trial, ntrial)) {
			memcpy(model, trial, ntrial * sizeof(*model));
			nrec = ntrial;
			return;
		}
	}
	CHECK(0, "del [%#lx,%#lx): the table matches no removal of one of the %zu candidates", (unsigned long)s,
	      (unsigned long)e, nc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uintptr_t s, e;
	unsigned flags, src;

	in = data;
	in_left = size;
	/* each input starts from an empty table without a cap */
	sf_ranges_child_reset();
	sf_ranges_set_cap(0);
	nrec = cap = 0;
	for (step = 0; in_left; step++) {
		unsigned op = byte();
		switch (op % 10) {
		case 0: case 1: case 2:
			range(&s, &e);
			flags = flags_src(&src);
			op_add(s, e, flags, src);
			break;
		case 3: case 4:
			range(&s, &e);
			op_del(s, e);
			break;
		case 5:
			range(&s, &e);
			flags = flags_src(&src);
			op_del_exact(s, e, flags, src);
			break;
		case 6:
			check_short_snapshot(byte() % (nrec + 3));
			break;
		case 7: /* a cap: none, or near the current count */
			cap = (op >> 4) ? nrec + (op >> 4) - 8 : 0;
			if (cap > MAX_RECS)
				cap = 0;
			sf_ranges_set_cap(cap);
			break;
		case 8: { /* bulk add of distinct ranges: the table grows (index and slot chunks) */
			unsigned n = byte() * (op & 0x80 ? 24 : 4), base = byte();
			flags = flags_src(&src);
			bulk_add(0x40000000u + ((uintptr_t)base << 24), n, 64 + (op >> 4 & 7), flags, src);
			break;
		}
		case 9: /* bulk delete of every other record, or a child's reset */
			if (op & 0x10) {
				sf_ranges_child_reset();
				nrec = 0;
			} else {
				for (size_t i = nrec; i-- > 0;)
					if (i % 2 == 0) {
						struct rec r = model[i];
						CHECK(sf_ranges_del_exact(r.start, r.end, r.flags, r.source) == 0, "bulk del_exact");
						drop_ref(model, &nrec, i);
					}
			}
			break;
		}
		/* the whole snapshot while the table is small, and after bulk steps; counts always */
		if (nrec < 256 || op % 10 >= 8)
			check_model();
		else
			check_counts();
	}
	check_model();
	return 0;
}
