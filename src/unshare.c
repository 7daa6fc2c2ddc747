/*
 * unshare.c - make the pages of a range exclusively this process's before a
 * device pins them.
 *
 * A page still copy-on-write shared with an earlier child when it gets
 * pinned breaks on kernels 5.9-5.18: a read-only pin (a verbs MR without
 * local write access) takes the shared page, and the parent's next write
 * moves the parent to a copy while the device keeps the old page.  5.19
 * unshares on pin.  A write fault that changes no byte gives the parent its
 * own page first, which the pin then holds: MADV_POPULATE_WRITE (5.14+)
 * faults every page of the range for writing without touching its content;
 * before 5.14, an atomic OR of 0 into one byte of each page does the same
 * for anonymous memory (atomic, so a byte another thread writes meanwhile
 * is not lost).  Read-only mappings are left alone: writing there would
 * fault, and the parent cannot move off a page it cannot write.  Shared
 * mappings have no copy-on-write.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "common.h"
#include "probe.h"
#include "sysmem.h"
#include "unshare.h"
#include "vmamap.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

struct span {
	uintptr_t start, end;
	uintptr_t pos; /* covered up to here */
};

static void touch(uintptr_t a, uintptr_t b)
{
	for (uintptr_t p = a; p < b; p += sf_page_size)
		__atomic_fetch_or((volatile unsigned char *)p, 0, __ATOMIC_RELAXED);
}

/* Is the span mapped without a hole?  (The pin would fail on a hole: nothing to prepare for.) */
static int coverage(const struct sf_vma *v, void *arg)
{
	struct span *s = arg;

	if (v->end <= s->pos)
		return 0;
	if (v->start > s->pos)
		return 1;
	s->pos = v->end;
	return s->pos >= s->end;
}

static int per_mapping(const struct sf_vma *v, void *arg)
{
	const struct span *s = arg;

	if (v->start >= s->end)
		return 1;
	if (v->end <= s->start || v->shared || !(v->prot & PROT_WRITE))
		return 0;
	uintptr_t a = v->start > s->start ? v->start : s->start;
	uintptr_t b = v->end < s->end ? v->end : s->end;
	if (sf_madvise((void *)a, b - a, MADV_POPULATE_WRITE) < 0 && errno == EINVAL && v->anon)
		touch(a, b); /* before 5.14; device (VM_IO/PFNMAP) mappings are never anonymous */
	return 0;
}

void sf_unshare_before_pin(const void *addr, size_t len)
{
	enum safefork_mode mode = __atomic_load_n(&sf_mode, __ATOMIC_RELAXED);

	/*
	 * log and off change nothing; a kernel that unshares on pin itself
	 * (5.19+) needs nothing from us in any mode, and the registration path
	 * then makes no system call.
	 */
	if (!addr || !len || mode == SAFEFORK_MODE_OFF || mode == SAFEFORK_MODE_LOG || sf_kernel()->reliable_pins)
		return;
	int saved = errno;
	struct span s = { sf_align_down((uintptr_t)addr, sf_page_size), (uintptr_t)addr + len, 0 };
	s.end = s.end < (uintptr_t)addr ? UINTPTR_MAX & ~(sf_page_size - 1) : sf_align_up(s.end, sf_page_size);
	/*
	 * One call when the whole range is writable memory (the usual case);
	 * else mapping by mapping, if the range is mapped at all: a bogus
	 * range must not make us populate whatever memory lies inside it.
	 */
	if (s.end > s.start && sf_madvise((void *)s.start, s.end - s.start, MADV_POPULATE_WRITE) < 0 &&
	    errno != ENOMEM) {
		char buf[8192];
		s.pos = s.start;
		if (sf_maps_foreach_in(buf, sizeof(buf), coverage, &s) == 0 && s.pos >= s.end)
			sf_maps_foreach_in(buf, sizeof(buf), per_mapping, &s);
	}
	errno = saved;
}
