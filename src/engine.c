/*
 * engine.c - userspace early COW: prepare / parent / child.
 *
 * prepare: snapshot the table, merge the ranges into page runs, split them
 *   at mapping boundaries (/proc/self/maps), keep the runs out of the child
 *   (MADV_WIPEONFORK for private anonymous memory, MADV_DONTFORK for other
 *   private mappings, hugetlb rounded to its page size), and copy them into
 *   the staging pool, which the child inherits.
 * parent: undo the advice, hide the pool again.
 * child:  put the memory back (fill the wiped pages, or map and fill the
 *   missing ones), drop the pool, empty the table.
 *
 * The parent's pages are never shared with the child, so they are never
 * write-protected: the device and the parent keep the same physical pages
 * whatever any thread writes during or after the fork.  Details and the
 * invariants: doc/design.md.
 *
 * Fork-path rules: no malloc, no stdio, no lock but our own engine lock
 * (taken with every signal blocked, so a signal handler cannot re-enter it
 * on the same thread), errno preserved.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "advice.h"
#include "engine.h"
#include "interpose.h"
#include "lock.h"
#include "msg.h"
#include "pins.h"
#include "probe.h"
#include "ranges.h"
#include "report.h"
#include "staging.h"
#include "stats.h"
#include "sysmem.h"
#include "vmamap.h"

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#define MADV_KEEPONFORK 19
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

enum { SEG_WIPE = 1, SEG_DONTFORK = 2 };

/* What a run gets, in rising order of what the child keeps (merging takes the highest). */
enum { P_NONE = 0, P_LOG, P_DONTFORK, P_WIPE, P_COPY };

/* A run of whole pages inside one mapping, handled as one unit. */
struct seg {
	uintptr_t start, end;   /* what the advice covers */
	uintptr_t vstart, vend; /* the mapping it lies in (start/end when unknown) */
	size_t off;             /* where its snapshot is in the staging */
	int prot;
	unsigned char anon, hugetlb_anon, kind, applied, staged, huge_shift, pol;
};

static struct {
	struct sf_range_view *views;
	size_t views_cap;
	struct sf_range_view *sortbuf; /* merge sort scratch, views_cap entries when present */
	size_t sortbuf_cap;
	struct seg *segs;
	size_t segs_cap, nsegs;
	uintptr_t *edges; /* partly registered pages, ascending */
	size_t edges_cap, nedges;
	char *staging;
	size_t unmapped, shared, copied;
	size_t hot;       /* registered bytes the child needs before its handler runs: left to the kernel */
	uintptr_t sp, tp; /* the forking thread's stack and thread pointers */
	size_t log_ranges, log_bytes; /* registered but only reported (log mode or SAFEFORK_LOGONLY) */
	int maps_ok;
	sigset_t oldmask;
	enum safefork_entry entry;
	void *caller;
	unsigned long long t0;
} E;

static sf_lock_t engine_lock = SF_LOCK_INIT;

static const char *const entry_names[SAFEFORK_ENTRY_MAX] = {
	[SAFEFORK_ENTRY_FORK] = "fork",
	[SAFEFORK_ENTRY__FORK] = "_Fork",
	[SAFEFORK_ENTRY_CLONE] = "clone",
	[SAFEFORK_ENTRY_SYSCALL] = "syscall",
	[SAFEFORK_ENTRY_DAEMON] = "daemon",
	[SAFEFORK_ENTRY_FORKPTY] = "forkpty",
	[SAFEFORK_ENTRY_SYSTEM] = "system",
	[SAFEFORK_ENTRY_POPEN] = "popen",
	[SAFEFORK_ENTRY_POSIX_SPAWN] = "posix_spawn",
	[SAFEFORK_ENTRY_SAFEFORK_FORK] = "safefork_fork",
	[SAFEFORK_ENTRY_INTERNAL] = "a C-library-internal fork",
	[SF_ENTRY_PROBE] = "the kernel probe",
};

const char *sf_entry_name(enum safefork_entry e)
{
	return (unsigned)e < SAFEFORK_ENTRY_MAX && entry_names[e] ? entry_names[e] : "?";
}
/* This thread's fork is being made safe: parent/child must finish it. */
static SF_TLS int t_active;

/*
 * Whole pages are copied, bytes the program never allocated included (heap
 * pages hold malloc metadata and free space).  A sanitizer's memcpy
 * interceptor would call that an overflow, so the copy goes to the C
 * library's memcpy directly.
 */
static void *(*page_copy)(void *, const void *, size_t) = memcpy;

#define HOT_TCB_SIZE 2368ul /* glibc 2.36's struct pthread (TLS_TCB_SIZE), above the thread pointer (x86-64) */
/* Static TLS below the thread pointer (x86-64, aarch64 put it on the other side: then the guess stays). */
static size_t tls_below = 64ul << 10;

void sf_engine_init(void)
{
	void *p = sf_next_symbol("memcpy", NULL);
	if (p)
		page_copy = (void *(*)(void *, const void *, size_t))p;
	/* The dynamic linker's own figure (what the sanitizers use too); without it, a 64 KiB guess. */
	void (*tls_info)(size_t *, size_t *) = (void (*)(size_t *, size_t *))dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info");
	size_t size = 0, align = 0;
	if (tls_info) {
		tls_info(&size, &align);
		if (size > HOT_TCB_SIZE && size < (16ul << 20))
			tls_below = size - HOT_TCB_SIZE; /* its figure includes the TCB above the thread pointer */
	}
}

/* A protection that had to degrade: counted, and said once. */
#define fallback(flagp, ...)                               \
	do {                                               \
		sf_count(SF_C_FALLBACKS, 1);               \
		sf_report_fallback();                      \
		sf_msg_once(flagp, __VA_ARGS__);           \
	} while (0)

static int once_hot, once_split, once_unmapped, once_maps, once_staging, once_advice, once_huge, once_child_map, once_scratch;

static void *scratch_grow(void *old, size_t old_bytes, size_t new_bytes)
{
	void *p = sf_map(new_bytes);

	if (!p)
		return NULL;
	if (old) {
		memcpy(p, old, old_bytes);
		sf_munmap(old, old_bytes);
	}
	return p;
}

/* Grow a scratch array to at least want entries; its old content is not kept. */
static int reserve(void **arr, size_t *cap, size_t want, size_t elem)
{
	if (*cap >= want)
		return 0;
	size_t ncap = want * 2 > 256 ? want * 2 : 256;
	void *n = scratch_grow(NULL, 0, ncap * elem);
	if (!n)
		return -1;
	if (*arr)
		sf_munmap(*arr, *cap * elem);
	*arr = n;
	*cap = ncap;
	return 0;
}

int sf_engine_reserve(size_t nranges)
{
	sigset_t all, old;
	int rc = 0;

	if (__atomic_load_n(&E.views_cap, __ATOMIC_RELAXED) >= nranges &&
	    __atomic_load_n(&E.sortbuf_cap, __ATOMIC_RELAXED) >= nranges &&
	    __atomic_load_n(&E.edges_cap, __ATOMIC_RELAXED) >= 2 * nranges &&
	    __atomic_load_n(&E.segs_cap, __ATOMIC_RELAXED) >= nranges + 16)
		return 0;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	sf_lock(&engine_lock);
	if (reserve((void **)&E.views, &E.views_cap, nranges, sizeof(*E.views)) < 0 ||
	    reserve((void **)&E.sortbuf, &E.sortbuf_cap, nranges, sizeof(*E.sortbuf)) < 0 ||
	    reserve((void **)&E.edges, &E.edges_cap, 2 * nranges, sizeof(*E.edges)) < 0 ||
	    reserve((void **)&E.segs, &E.segs_cap, nranges + 16, sizeof(*E.segs)) < 0)
		rc = -ENOMEM;
	sf_unlock(&engine_lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static int seg_push(const struct seg *s)
{
	if (E.nsegs == E.segs_cap) {
		size_t ncap = E.segs_cap ? E.segs_cap * 2 : 256;
		struct seg *n = scratch_grow(E.segs, E.segs_cap * sizeof(*n), ncap * sizeof(*n));
		if (!n)
			return -1;
		E.segs = n;
		E.segs_cap = ncap;
	}
	E.segs[E.nsegs++] = *s;
	return 0;
}

/* Heapsort by start: no malloc (glibc's qsort may allocate). */
static void sift(struct sf_range_view *v, size_t root, size_t n)
{
	for (;;) {
		size_t c = 2 * root + 1;
		if (c >= n)
			return;
		if (c + 1 < n && v[c + 1].start > v[c].start)
			c++;
		if (v[root].start >= v[c].start)
			return;
		struct sf_range_view t = v[root];
		v[root] = v[c];
		v[c] = t;
		root = c;
	}
}

static void heap_sort(struct sf_range_view *v, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift(v, i, n);
	for (size_t i = n; i-- > 1;) {
		struct sf_range_view t = v[0];
		v[0] = v[i];
		v[i] = t;
		sift(v, 0, i);
	}
}

/*
 * Natural merge sort: ascending runs merged pairwise between v and tmp.
 * The table hands out ranges in slot order, which is address order when
 * the program registered in address order (a pool carved front to back):
 * then this is one O(n) pass, where the heap sort cost O(n log n) (a
 * quarter of the fork path's instructions at 1 000 ranges).  Returns the
 * buffer holding the result.
 */
static struct sf_range_view *merge_sort(struct sf_range_view *v, struct sf_range_view *tmp, size_t n)
{
	struct sf_range_view *src = v, *dst = tmp;
	size_t runs;

	do {
		runs = 0;
		for (size_t i = 0; i < n; runs++) {
			size_t a = i, m = i + 1, b;
			while (m < n && src[m - 1].start <= src[m].start)
				m++;
			if (a == 0 && m == n)
				return src; /* sorted */
			b = m < n ? m + 1 : n;
			while (b < n && src[b - 1].start <= src[b].start)
				b++;
			size_t x = a, y = m, k = a;
			while (x < m && y < b)
				dst[k++] = src[y].start < src[x].start ? src[y++] : src[x++];
			while (x < m)
				dst[k++] = src[x++];
			while (y < b)
				dst[k++] = src[y++];
			i = b;
		}
		struct sf_range_view *t = src;
		src = dst;
		dst = t;
	} while (runs > 1);
	return src;
}

static void sort_views(struct sf_range_view *v, size_t n)
{
	if (E.sortbuf_cap < n) {
		heap_sort(v, n); /* no scratch (it could not be mapped): in place */
		return;
	}
	struct sf_range_view *r = merge_sort(v, E.sortbuf, n);
	if (r != v)
		memcpy(v, r, n * sizeof(*v));
}

/*
 * Pages a registration covers only in part also hold the program's other
 * data, typically malloc's chunk headers.  Those bytes must reach the child
 * as they are when glibc's fork takes the malloc locks, which is after every
 * prepare handler: so they are copied again at the very end of prepare,
 * after everything else, to leave another thread's malloc the smallest
 * window.  (doc/design.md: measured effect.)
 */
static void note_edges(size_t nexact)
{
	E.nedges = 0;
	if (reserve((void **)&E.edges, &E.edges_cap, 2 * nexact, sizeof(*E.edges)) < 0)
		return; /* then the edges are only copied once, with the rest */
	for (size_t i = 0; i < nexact; i++) {
		uintptr_t head = sf_align_down(E.views[i].start, sf_page_size);
		uintptr_t tail = sf_align_down(E.views[i].end - 1, sf_page_size);
		if (E.views[i].start != head && (!E.nedges || E.edges[E.nedges - 1] != head))
			E.edges[E.nedges++] = head;
		if (E.views[i].end % sf_page_size && (!E.nedges || E.edges[E.nedges - 1] != tail))
			E.edges[E.nedges++] = tail;
	}
}

/* The policy a registration asks for: its own flag, else the process-wide mode. */
static unsigned policy_of(unsigned flags, enum safefork_mode mode)
{
	if (flags & SF_RANGE_NOPIN)
		return P_NONE;
	if (flags & SAFEFORK_COPY)
		return P_COPY;
	if (flags & SAFEFORK_WIPE)
		return P_WIPE;
	if (flags & SAFEFORK_DONTFORK)
		return P_DONTFORK;
	if (flags & SAFEFORK_LOGONLY)
		return P_LOG;
	switch (mode) {
	case SAFEFORK_MODE_AUTO:
		return sf_auto_policy(flags) ? P_COPY : P_NONE;
	case SAFEFORK_MODE_COPY:
		return P_COPY;
	case SAFEFORK_MODE_DONTFORK:
		return P_DONTFORK;
	case SAFEFORK_MODE_WIPE:
		return P_WIPE;
	case SAFEFORK_MODE_LOG:
		return P_LOG;
	default:
		return P_NONE;
	}
}

/* Snapshot the table into E.views; returns the number of page runs to protect. */
static size_t collect(void)
{
	size_t n, k = 0;

	while ((n = sf_ranges_snapshot(E.views, E.views_cap)) > E.views_cap) {
		if (reserve((void **)&E.views, &E.views_cap, n + n / 2 + 64, sizeof(*E.views)) < 0) {
			fallback(&once_scratch, "cannot map scratch memory for the fork plan of %zu ranges (%d); "
				    "protecting the first %zu", n, errno, E.views_cap);
			n = E.views_cap;
			break;
		}
	}
	(void)reserve((void **)&E.sortbuf, &E.sortbuf_cap, n, sizeof(*E.sortbuf)); /* else the in-place sort */
	/* From here on .flags holds the policy.  Ranges only reported are counted and left alone. */
	enum safefork_mode mode = __atomic_load_n(&sf_mode, __ATOMIC_RELAXED);
	E.log_ranges = E.log_bytes = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned pol = policy_of(E.views[i].flags, mode);
		sf_report_range(E.views[i].flags, pol == P_LOG ? SF_REP_LOGGED : pol > P_LOG ? SF_REP_PROTECTED : SF_REP_LEFT,
				E.views[i].end - E.views[i].start);
		if (pol == P_LOG) {
			E.log_ranges++;
			E.log_bytes += E.views[i].end - E.views[i].start;
		}
		if (pol <= P_LOG)
			continue;
		E.views[k] = E.views[i];
		E.views[k++].flags = pol;
	}
	sort_views(E.views, k);
	/* Merge the exact byte ranges; pages they only partly cover hold other data too. */
	size_t m = 0;
	for (size_t i = 0; i < k; i++) {
		if (m && E.views[i].start <= E.views[m - 1].end) {
			if (E.views[i].end > E.views[m - 1].end)
				E.views[m - 1].end = E.views[i].end;
			if (E.views[i].flags > E.views[m - 1].flags)
				E.views[m - 1].flags = E.views[i].flags;
		} else {
			E.views[m++] = E.views[i];
		}
	}
	note_edges(m);
	/* Whole pages from here on; merge runs that now touch: one madvise and one copy per run. */
	k = 0;
	for (size_t i = 0; i < m; i++) {
		uintptr_t a = sf_align_down(E.views[i].start, sf_page_size);
		uintptr_t b = sf_align_up(E.views[i].end, sf_page_size);
		if (k && a <= E.views[k - 1].end) {
			if (b > E.views[k - 1].end)
				E.views[k - 1].end = b;
			if (E.views[i].flags > E.views[k - 1].flags)
				E.views[k - 1].flags = E.views[i].flags;
		} else {
			E.views[k].start = a;
			E.views[k].end = b;
			E.views[k].flags = E.views[i].flags;
			k++;
		}
	}
	return k;
}

/*
 * The child runs glibc's code on the forking thread's stack and thread
 * control block before any atfork handler can put memory back: pages there
 * must reach it as they are.  Registered bytes on them (a buffer on the
 * stack, a freed registered range reused for a thread stack) are left to
 * the kernel's copy-on-write.  Hot: from HOT_BELOW under the stack pointer
 * (the frames of the child's own handlers) to the top of its mapping, and
 * the static TLS and TCB around the thread pointer (the dynamic linker's
 * static TLS size below it, the TCB above it).
 */
#define HOT_BELOW (64ul << 10)
#define HOT_STACK_NOMAP (16ul << 20) /* the stack's extent when /proc/self/maps is unreadable */

static int push_cold(const struct seg *s)
{
	uintptr_t z[2][2];
	int n = 0;
	uintptr_t lo = s->vstart, hi = s->vend;

	if (E.sp >= lo && E.sp < hi) {
		uintptr_t a = sf_align_down(E.sp, sf_page_size);
		z[n][0] = a - lo > HOT_BELOW ? a - HOT_BELOW : lo;
		z[n][1] = E.maps_ok || hi - a < HOT_STACK_NOMAP ? hi : a + HOT_STACK_NOMAP;
		n++;
	}
	if (E.tp >= lo && E.tp < hi) {
		uintptr_t from = E.tp - lo > tls_below ? sf_align_down(E.tp - tls_below, sf_page_size) : lo;
		z[n][0] = from;
		uintptr_t b = sf_align_up(E.tp + HOT_TCB_SIZE + 256, sf_page_size);
		z[n][1] = b < hi ? b : hi;
		if (n && z[1][0] < z[0][0]) { /* in address order */
			uintptr_t t0 = z[0][0], t1 = z[0][1];
			z[0][0] = z[1][0];
			z[0][1] = z[1][1];
			z[1][0] = t0;
			z[1][1] = t1;
		}
		n++;
	}
	struct seg part = *s;
	uintptr_t pos = s->start;
	for (int i = 0; i < n && pos < s->end; i++) {
		if (z[i][1] <= pos || z[i][0] >= s->end)
			continue;
		if (z[i][0] > pos) {
			part.start = pos;
			part.end = z[i][0];
			if (seg_push(&part) < 0)
				return -1;
		}
		uintptr_t hot_end = z[i][1] < s->end ? z[i][1] : s->end;
		E.hot += hot_end - (z[i][0] > pos ? z[i][0] : pos);
		pos = hot_end;
	}
	if (pos < s->end) {
		part.start = pos;
		part.end = s->end;
		return seg_push(&part);
	}
	return 0;
}

/* Split the merged runs at mapping boundaries; note unmapped and shared parts. */
struct walk {
	size_t n, i;
	uintptr_t pos;
	int failed;
};

static int walk_vma(const struct sf_vma *v, void *arg)
{
	struct walk *w = arg;

	while (w->i < w->n) {
		const struct sf_range_view *e = &E.views[w->i];
		if (w->pos < e->start)
			w->pos = e->start;
		if (w->pos >= e->end) {
			w->i++;
			continue;
		}
		if (v->end <= w->pos)
			return 0; /* this mapping lies before the run: next mapping */
		if (v->start > w->pos) {
			uintptr_t gap_end = v->start < e->end ? v->start : e->end;
			E.unmapped += gap_end - w->pos;
			w->pos = gap_end;
			continue;
		}
		uintptr_t end = e->end < v->end ? e->end : v->end;
		if (v->shared) {
			/* Shared mappings are not copy-on-write: parent and device keep the page. */
			E.shared += end - w->pos;
		} else {
			struct seg s = { .start = w->pos, .end = end, .vstart = v->start, .vend = v->end,
					 .prot = v->prot, .anon = (unsigned char)v->anon,
					 .hugetlb_anon = (unsigned char)v->hugetlb_anon, .pol = (unsigned char)e->flags };
			if (push_cold(&s) < 0) {
				w->failed = 1;
				return 1;
			}
		}
		w->pos = end;
	}
	return 1;
}

static void plan_segments(size_t nruns)
{
	struct walk w = { .n = nruns };
	int rc;

	E.nsegs = E.unmapped = E.shared = E.hot = 0;
	if (!nruns) /* every range left to the kernel or only logged: no need to read the map */
		return;
	E.maps_ok = 1; /* the mappings' bounds are known during the walk */
	rc = sf_maps_foreach(walk_vma, &w);
	E.maps_ok = rc == 0 && !w.failed;
	if (E.maps_ok) {
		for (; w.i < w.n; w.i++) { /* beyond the last mapping */
			const struct sf_range_view *e = &E.views[w.i];
			uintptr_t from = w.pos > e->start ? w.pos : e->start;
			if (from < e->end)
				E.unmapped += e->end - from;
		}
		return;
	}
	/* Without the map (no fd left, no /proc): treat each run as private, writable memory. */
	fallback(&once_maps, "cannot read /proc/self/maps (%d); protecting registered ranges as private "
		    "read-write memory", rc < 0 ? -rc : ENOMEM);
	E.nsegs = E.unmapped = E.shared = E.hot = 0;
	E.maps_ok = 0;
	for (size_t i = 0; i < nruns; i++) {
		struct seg s = { .start = E.views[i].start, .end = E.views[i].end, .vstart = 0,
				 .vend = UINTPTR_MAX, .prot = PROT_READ | PROT_WRITE, .anon = 1,
				 .pol = (unsigned char)E.views[i].flags };
		if (push_cold(&s) < 0)
			break;
	}
}

/* MADV_DONTFORK, rounded out to the hugetlb page size when the mapping insists. */
static int dontfork(struct seg *s)
{
	if (sf_madvise((void *)s->start, s->end - s->start, MADV_DONTFORK) == 0)
		return 0;
	for (unsigned shift = 21; errno == EINVAL && shift <= 30; shift += 9) {
		uintptr_t a = sf_align_down(s->start, 1ul << shift), b = sf_align_up(s->end, 1ul << shift);
		if (E.maps_ok && (a < s->vstart || b > s->vend))
			continue;
		if (sf_madvise((void *)a, b - a, MADV_DONTFORK) == 0) {
			s->start = a;
			s->end = b;
			s->huge_shift = (unsigned char)shift;
			return 0;
		}
	}
	return -1;
}

static int once_wipe_fallback;

static int advise(struct seg *s)
{
	if (s->pol == P_DONTFORK) {
		if (dontfork(s) < 0)
			return -1;
		s->kind = SEG_DONTFORK;
		return 0;
	}
	if (s->anon && !s->hugetlb_anon &&
	    sf_madvise((void *)s->start, s->end - s->start, MADV_WIPEONFORK) == 0) {
		s->kind = SEG_WIPE;
		return 0;
	}
	/* File-backed private memory, hugetlb, or a kernel without WIPEONFORK (< 4.14). */
	if (s->pol == P_WIPE) {
		fallback(&once_wipe_fallback, "MADV_WIPEONFORK refused for %zu registered bytes at %p (hugetlb or "
			    "file-backed mapping, or a kernel before 4.14): copying them for the child instead",
			    s->end - s->start, (void *)s->start);
		s->pol = P_COPY;
	}
	if (dontfork(s) == 0) {
		s->kind = SEG_DONTFORK;
		return 0;
	}
	return -1;
}

/*
 * May the whole mapping around s be kept out of the child?  Not if it holds
 * this thread's thread control block or stack: glibc's own child-side code
 * touches them before any atfork handler can put the memory back.
 */
static int whole_mapping_ok(const struct seg *s)
{
	uintptr_t tp = (uintptr_t)__builtin_thread_pointer(), sp = (uintptr_t)__builtin_frame_address(0);

	return !(tp >= s->vstart && tp < s->vend) && !(sp >= s->vstart && sp < s->vend);
}

static void apply_advice(void)
{
	size_t m = 0;

	for (size_t i = 0; i < E.nsegs; i++) {
		struct seg *s = &E.segs[i];
		/* madvise reports a failed VMA split as EAGAIN (ENOMEM on older kernels) */
		if (advise(s) < 0 && (errno == EAGAIN || errno == ENOMEM) && E.maps_ok &&
		    (s->start != s->vstart || s->end != s->vend) && whole_mapping_ok(s)) {
			/* No VMA left to split (vm.max_map_count): keep the whole mapping out of the child. */
			fallback(&once_split, "cannot split the mapping %p-%p for %zu registered bytes (vm.max_map_count "
				    "reached?): keeping all %zu bytes of it out of the child instead", (void *)s->vstart,
				    (void *)s->vend, s->end - s->start, s->vend - s->vstart);
			s->start = s->vstart;
			s->end = s->vend;
			(void)advise(s);
		}
		s->applied = s->kind != 0;
		if (!s->applied)
			fallback(&once_advice, "cannot keep %zu registered bytes at %p out of the child (madvise: %d); "
				    "they are shared copy-on-write as without safefork", s->end - s->start,
				    (void *)s->start, errno);
		/* Rounding (hugetlb, whole mapping) can make runs overlap: merge them. */
		struct seg cur = *s;
		while (m && cur.applied && E.segs[m - 1].applied && cur.start < E.segs[m - 1].end &&
		       E.segs[m - 1].kind == cur.kind) {
			if (E.segs[m - 1].pol > cur.pol)
				cur.pol = E.segs[m - 1].pol;
			struct seg *p = &E.segs[--m];
			if (p->start < cur.start)
				cur.start = p->start;
			if (p->end > cur.end)
				cur.end = p->end;
		}
		E.segs[m++] = cur;
	}
	E.nsegs = m;
}

/* The last thing before glibc locks malloc: copy the partly registered pages again. */
static void recopy_edges(void)
{
	size_t j = 0;

	for (size_t e = 0; e < E.nedges; e++) {
		uintptr_t page = E.edges[e];
		while (j < E.nsegs && E.segs[j].end <= page)
			j++;
		if (j == E.nsegs)
			return;
		const struct seg *s = &E.segs[j];
		if (s->staged && page >= s->start)
			page_copy(E.staging + s->off + (page - s->start), (void *)page, sf_page_size);
	}
}

static void stage(void)
{
	size_t total = 0;

	for (size_t i = 0; i < E.nsegs; i++)
		if (E.segs[i].applied && E.segs[i].pol == P_COPY && (E.segs[i].prot & PROT_READ))
			total += E.segs[i].end - E.segs[i].start;
	E.staging = NULL;
	E.copied = 0;
	if (!total)
		return;
	E.staging = sf_staging_get(total);
	if (!E.staging) {
		/* The parent's pages stay safe; the child loses them (zeros or unmapped), like MADV_DONTFORK. */
		fallback(&once_staging, "cannot map %zu bytes of staging memory (%d); this child gets no copy of "
			    "the registered ranges (as with MADV_DONTFORK)", total, errno);
		return;
	}
	for (size_t i = 0; i < E.nsegs; i++) {
		struct seg *s = &E.segs[i];
		if (!s->applied || s->pol != P_COPY || !(s->prot & PROT_READ))
			continue;
		s->off = E.copied;
		page_copy(E.staging + s->off, (void *)s->start, s->end - s->start);
		s->staged = 1;
		E.copied += s->end - s->start;
	}
	sf_staging_fork_begin();
	recopy_edges();
}

int sf_engine_prepare(enum safefork_entry entry, void *caller)
{
	sigset_t all, old;
	int saved = errno;

	if (sf_mode == SAFEFORK_MODE_OFF || sf_ranges_live() == 0)
		return 0;
	unsigned long long t0 = sf_now_ns();
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	sf_lock(&engine_lock);
	t_active = 1;
	E.oldmask = old;
	E.entry = entry;
	E.caller = caller;
	E.t0 = t0;
	E.sp = (uintptr_t)__builtin_frame_address(0);
	E.tp = (uintptr_t)__builtin_thread_pointer();
	sf_report_begin(entry, caller);

	size_t nruns = collect();
	plan_segments(nruns);
	if (E.hot)
		fallback(&once_hot, "%zu registered bytes lie on the forking thread's stack or thread control block, "
			    "which the child uses before anything can be restored: left copy-on-write there, as "
			    "without safefork", E.hot);
	if (E.unmapped)
		fallback(&once_unmapped, "%zu bytes of registered ranges are no longer mapped (unmapped or freed "
			    "while registered?); skipped", E.unmapped);
	apply_advice();
	stage();
	unsigned long long t1 = sf_now_ns();
	sf_count(SF_C_PREPARE_NS, t1 - t0);
	E.t0 = t1;
	errno = saved;
	return 1;
}

void sf_engine_fork_failed(void)
{
	sf_lock(&engine_lock);
	sf_staging_fork_failed();
	sf_unlock(&engine_lock);
}

static void keep_on_fork(uintptr_t a, uintptr_t b, void *arg)
{
	(void)arg;
	sf_madvise((void *)a, b - a, MADV_KEEPONFORK);
}

static void do_fork(uintptr_t a, uintptr_t b, void *arg)
{
	(void)arg;
	sf_madvise((void *)a, b - a, MADV_DOFORK);
}

void sf_engine_parent(pid_t pid)
{
	int saved = errno;

	if (!t_active)
		return;
	for (size_t i = 0; i < E.nsegs; i++) {
		struct seg *s = &E.segs[i];
		if (s->applied) /* undo ours, not the program's own advice */
			sf_advice_unmarked(s->start, s->end, s->kind == SEG_WIPE ? SF_MARK_WIPE : SF_MARK_DONTFORK,
					   s->kind == SEG_WIPE ? keep_on_fork : do_fork, NULL);
	}
	if (E.staging)
		sf_staging_parent(pid < 0);
	if (pid >= 0) {
		size_t applied = 0;
		for (size_t i = 0; i < E.nsegs; i++)
			applied += E.segs[i].applied;
		if (applied)
			sf_count(SF_C_PROTECTED, 1);
		if (E.log_ranges)
			sf_count(SF_C_LOGGED, 1);
		sf_count(SF_C_BYTES_COPIED, E.copied);
	}
	if (sf_debug && pid >= 0)
		sf_msg("pid %d: fork via %s: %zu runs kept from the child, %zu bytes copied for it, %zu ranges only "
		       "logged", (int)getpid(), sf_entry_name(E.entry), E.nsegs, E.copied, E.log_ranges);
	struct sf_report rep; /* taken out before the lock goes; emitted after (it may take the loader's lock) */
	int report = pid >= 0 && sf_report_end(&rep, E.copied);
	E.nsegs = 0;
	E.staging = NULL;
	t_active = 0;
	sigset_t old = E.oldmask;
	sf_count(SF_C_PARENT_NS, sf_now_ns() - E.t0);
	sf_unlock(&engine_lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (report)
		sf_report_emit(&rep);
	errno = saved;
}

/* Fill [a, b) of a wiped run from the staging (the program's own wiped parts stay zero). */
static void fill_from_staging(uintptr_t a, uintptr_t b, void *arg)
{
	const struct seg *s = arg;
	page_copy((void *)a, E.staging + s->off + (a - s->start), b - a);
}

/*
 * Map [a, b) of a run MADV_DONTFORK kept from us and fill it (called for the
 * pieces the program did not mark DONTFORK itself: those stay out).
 */
static void restore_missing(uintptr_t a, uintptr_t b, void *arg)
{
	const struct seg *s = arg;
	size_t len = b - a;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;
	void *p = MAP_FAILED;

	if (s->huge_shift)
		p = sf_mmap((void *)a, len, PROT_READ | PROT_WRITE,
			 flags | MAP_HUGETLB | (s->huge_shift << MAP_HUGE_SHIFT), -1, 0);
	if (p == MAP_FAILED) {
		if (s->huge_shift)
			fallback(&once_huge, "no free huge pages in child %d: its copy of %zu registered bytes "
				    "uses normal pages", (int)getpid(), len);
		p = sf_mmap((void *)a, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	}
	if (p != (void *)a) {
		/* Something is mapped there (the program's own MADV_DONTFORK mapping is absent, so this is rare). */
		if (p != MAP_FAILED)
			sf_munmap(p, len);
		fallback(&once_child_map, "child %d cannot map its copy of %zu registered bytes at %p",
			    (int)getpid(), len, (void *)a);
		return;
	}
	page_copy(p, E.staging + s->off + (a - s->start), len);
	if (s->prot != (PROT_READ | PROT_WRITE))
		sf_mprotect(p, len, s->prot);
}

/* The wiped pages are ours, zero: fill them. */
static void restore_wiped(const struct seg *s)
{
	size_t len = s->end - s->start;
	unsigned char vec;

	/* The program's own MADV_DONTFORK on this mapping: it is not in the child, leave it so. */
	if (mincore((void *)s->start, sf_page_size, &vec) < 0 && errno == ENOMEM)
		return;
	if (!(s->prot & PROT_WRITE))
		sf_mprotect((void *)s->start, len, s->prot | PROT_WRITE);
	if (len >= (1ul << 20)) /* one call faults in the lot, cheaper than a fault per page */
		sf_madvise((void *)s->start, len, MADV_POPULATE_WRITE);
	sf_advice_unmarked(s->start, s->end, SF_MARK_WIPE, fill_from_staging, (void *)s);
	if (!(s->prot & PROT_WRITE))
		sf_mprotect((void *)s->start, len, s->prot);
}

void sf_engine_child(void)
{
	int saved = errno;

	if (sf_mode == SAFEFORK_MODE_OFF || !t_active)
		sf_stats_child_reset();
	if (sf_mode == SAFEFORK_MODE_OFF)
		return;
	/* Whoever held our locks (another thread) does not exist here. */
	sf_lock_reset(&engine_lock);
	if (!t_active) {
		sf_ranges_child_reset();
		sf_pins_child_reset();
		errno = saved;
		return;
	}
	unsigned long long t0 = sf_now_ns();
	for (size_t i = 0; i < E.nsegs; i++) {
		const struct seg *s = &E.segs[i];
		if (s->staged && s->kind == SEG_WIPE)
			restore_wiped(s);
		else if (s->staged)
			sf_advice_unmarked(s->start, s->end, SF_MARK_DONTFORK, restore_missing, (void *)s);
		/* The child inherited our WIPEONFORK: clear it, or its own children would get zeros here. */
		if (s->applied && s->kind == SEG_WIPE)
			sf_advice_unmarked(s->start, s->end, SF_MARK_WIPE, keep_on_fork, NULL);
	}
	if (E.staging)
		sf_staging_child();
	/* The child's memory is not pinned by anyone: it starts with an empty table. */
	sf_ranges_child_reset();
	sf_pins_child_reset();
	if (E.views)
		sf_munmap(E.views, E.views_cap * sizeof(*E.views));
	if (E.sortbuf)
		sf_munmap(E.sortbuf, E.sortbuf_cap * sizeof(*E.sortbuf));
	if (E.segs)
		sf_munmap(E.segs, E.segs_cap * sizeof(*E.segs));
	if (E.edges)
		sf_munmap(E.edges, E.edges_cap * sizeof(*E.edges));
	sigset_t old = E.oldmask;
	/* Until here the counters were still the parent's page: the time and any fallback are its fork's. */
	sf_count(SF_C_CHILD_NS, sf_now_ns() - t0);
	sf_stats_child_reset();
	memset(&E, 0, sizeof(E));
	t_active = 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
}
