/*
 * staging.c - the staging pool.
 *
 * The parent copies the registered ranges here just before the fork; the
 * child inherits this memory (private, copy-on-write) and copies it back
 * into place.  The pool is kept between forks so the parent's copy runs at
 * memcpy speed into already-faulted, huge-page-backed memory.
 *
 * Isolation between children: each pool has a small shared control page
 * counting the children that may still map it.  A child drops its count
 * once it has unmapped the pool.  The parent reuses a pool only when the
 * count is zero; otherwise it maps a new one (the old one stays with the
 * children until they let go).  Copy-on-write would keep a slow child's view
 * intact anyway; the count only avoids paying page copies in the parent.
 *
 * Between forks the pool and its control page are MADV_DONTFORK, so forks
 * with nothing registered hand the child nothing of ours.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "staging.h"
#include "sysmem.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

#define HUGE_SZ (2ul << 20)
#define CTL_SZ 4096ul

struct pool {
	char *base;
	size_t cap;   /* bytes mapped at base */
	size_t used;  /* bytes handed to the current fork, HUGE_SZ multiple */
	int *refs;    /* on the shared control page */
	int oneshot;  /* larger than the kept pool: unmapped after the fork */
};

static struct pool cur;
/* The control page counted for this thread's last fork, until it is known to have succeeded. */
static __thread int *t_refs __attribute__((tls_model("initial-exec")));
static size_t pool_max = 1ul << 30;

static size_t round_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static void name(void *p, size_t len, const char *n)
{
	prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, len, (unsigned long)n);
}

static void pool_unmap(struct pool *p)
{
	if (p->base)
		sf_munmap(p->base, p->cap);
	if (p->refs)
		sf_munmap(p->refs, CTL_SZ);
	*p = (struct pool){ 0 };
}

/* Huge-page-aligned private memory, so both the copy and the fork handle PMDs, not PTEs. */
static int pool_map(struct pool *p, size_t cap)
{
	size_t span = cap + HUGE_SZ;
	char *raw = sf_mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	void *ctl;

	if (raw == MAP_FAILED)
		return -1;
	char *base = (char *)round_up((uintptr_t)raw, HUGE_SZ);
	if (base > raw)
		sf_munmap(raw, (size_t)(base - raw));
	if (base + cap < raw + span)
		sf_munmap(base + cap, (size_t)(raw + span - (base + cap)));
	ctl = sf_mmap(NULL, CTL_SZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED) {
		int e = errno;
		sf_munmap(base, cap);
		errno = e;
		return -1;
	}
	sf_madvise(base, cap, MADV_HUGEPAGE);
	sf_madvise(base, cap, MADV_DONTFORK);
	sf_madvise(ctl, CTL_SZ, MADV_DONTFORK);
	name(base, cap, "safefork-staging");
	name(ctl, CTL_SZ, "safefork-staging-ctl");
	*p = (struct pool){ .base = base, .cap = cap, .refs = ctl };
	return 0;
}

char *sf_staging_get(size_t need)
{
	size_t cap = round_up(need ? need : 1, HUGE_SZ);

	if (cur.base && (__atomic_load_n(cur.refs, __ATOMIC_ACQUIRE) != 0 || cur.cap < cap))
		pool_unmap(&cur); /* a child may still read it, or too small */
	if (!cur.base && pool_map(&cur, cap) < 0)
		return NULL;
	cur.used = cap;
	cur.oneshot = cap > pool_max;
	return cur.base;
}

void sf_staging_fork_begin(void)
{
	sf_madvise(cur.base, cur.used, MADV_DOFORK);
	sf_madvise(cur.refs, CTL_SZ, MADV_DOFORK);
	__atomic_fetch_add(cur.refs, 1, __ATOMIC_RELEASE);
	t_refs = cur.refs;
}

void sf_staging_fork_failed(void)
{
	if (t_refs && t_refs == cur.refs)
		__atomic_fetch_sub(cur.refs, 1, __ATOMIC_RELEASE);
	t_refs = NULL;
}

void sf_staging_parent(int fork_failed)
{
	if (fork_failed)
		sf_staging_fork_failed();
	if (cur.oneshot) {
		pool_unmap(&cur);
		return;
	}
	sf_madvise(cur.base, cur.used, MADV_DONTFORK);
	sf_madvise(cur.refs, CTL_SZ, MADV_DONTFORK);
}

void sf_staging_child(void)
{
	int *refs = cur.refs;

	sf_munmap(cur.base, cur.cap);
	__atomic_fetch_sub(refs, 1, __ATOMIC_RELEASE);
	sf_munmap(refs, CTL_SZ);
	cur = (struct pool){ 0 };
	t_refs = NULL;
}

void sf_staging_set_max(size_t bytes)
{
	pool_max = bytes;
}

size_t sf_staging_held(void)
{
	return cur.cap;
}
