/*
 * wrap_verbs.c - rdma-core's libibverbs: the memory registration family,
 * the providers' ibv_dontfork_range/ibv_dofork_range, and ibv_fork_init.
 *
 * Every wrapper is bound to the exact version of the symbol it wraps
 * (ibv_reg_mr@IBVERBS_1.0 and @IBVERBS_1.1 are different functions taking
 * different objects) and forwards to that same version.  libibverbs is never
 * linked: it is looked up when a wrapper first runs (interpose.c), so
 * programs that never load it never notice these wrappers.
 *
 * One pin, one range.  libibverbs announces every pin it makes, whichever
 * entry point the program used, by calling its own exported
 * ibv_dontfork_range before the registration (unless ODP) and
 * ibv_dofork_range after the deregistration, through the PLT: those two
 * wrappers keep the table (identical ranges count up, as rdma-core's own
 * bookkeeping does), so a registration bound past our wrappers (NCCL's
 * dlvsym on its own handle) and any mix of paths stay exact.  The
 * registration wrappers make the pages the process's own before the pin,
 * name the source (verbs, rather than provider, for calls inside them),
 * and record per region only what libibverbs does not announce: ODP and
 * dma-buf registrations (not pins), or a registration whose
 * ibv_dontfork_range did not reach us (a libibverbs calling it directly).
 * libibverbs also calls its own registration functions through the PLT
 * (ibv_reg_mr -> ibv_reg_mr_iova2, ibv_dereg_mr@1.0 -> ibv_dereg_mr): the
 * outermost wrapper on the thread acts, the inner ones only forward.
 *
 * The wrappers never read the program's verbs objects (the 1.0 and 1.1
 * struct ibv_mr differ): what a region holds is remembered from its
 * registration (pins.c), so a bad pointer fails in libibverbs exactly as it
 * would without us.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "interpose.h"
#include "msg.h"
#include "pins.h"
#include "ranges.h"
#include "stats.h"
#include "sysmem.h"
#include "unshare.h"

/* Every libibverbs since 1.1 has ibv_dereg_mr@IBVERBS_1.1: without it there is nothing to wrap. */
#if SF_HAVE_ibv_dereg_mr

/* verbs.h values (ABI, stable since introduced): no verbs header is needed to build the wrappers. */
#define ACCESS_ON_DEMAND (1 << 6)
#define REREG_CHANGE_TRANSLATION 1
#define REREG_CHANGE_ACCESS 4
#define REREG_ERR_INPUT (-1)
#define REREG_ERR_DO_FORK_OLD (-3) /* the new translation is in place; only the old range's DOFORK failed */
#define FORK_DISABLED 0
#define FORK_ENABLED 1
#define FORK_UNNEEDED 2
#define MR_MASK_ADDR (1 << 1)
#define MR_MASK_FD (1 << 2)
#ifdef HAVE_VERBS_H
#include <infiniband/verbs.h>
_Static_assert(IBV_ACCESS_ON_DEMAND == ACCESS_ON_DEMAND && IBV_REREG_MR_CHANGE_TRANSLATION == REREG_CHANGE_TRANSLATION &&
		       IBV_REREG_MR_CHANGE_ACCESS == REREG_CHANGE_ACCESS && IBV_REREG_MR_ERR_INPUT == REREG_ERR_INPUT &&
		       IBV_REREG_MR_ERR_DO_FORK_OLD == REREG_ERR_DO_FORK_OLD && IBV_FORK_DISABLED == FORK_DISABLED &&
		       IBV_FORK_ENABLED == FORK_ENABLED && IBV_FORK_UNNEEDED == FORK_UNNEEDED,
	       "verbs.h constants");
#endif

/*
 * This thread is inside one of our registration wrappers, and libibverbs
 * announced the pin (ibv_dontfork_range/ibv_dofork_range reached us) since
 * it began.
 */
static SF_TLS int t_inside, t_announced;
static int once_missing, once_full;

/* Called through a versioned lookup (dlvsym(RTLD_DEFAULT, ...)) while no libibverbs is loaded. */
static void missing(const char *what)
{
	sf_msg_once(&once_missing, "%s called, but no libibverbs with it is loaded; the call fails (ENOSYS)", what);
	errno = ENOSYS;
}

static int tracking(void)
{
	sf_init();
	return sf_mode != SAFEFORK_MODE_OFF;
}

static unsigned pin_flags(int access)
{
	/* ODP: the device faults pages in through the process's page tables; nothing is pinned. */
	return (access & ACCESS_ON_DEMAND) ? SF_RANGE_NOPIN : SAFEFORK_KERNEL_PIN;
}

static uintptr_t end_of(uintptr_t start, size_t len)
{
	return start + len < start ? UINTPTR_MAX : start + len;
}

static void table_full(size_t len, const void *addr)
{
	sf_count(SF_C_FALLBACKS, 1);
	sf_msg_once(&once_full, "the range table is full (SAFEFORK_MAX_RANGES, or no memory): a verbs "
		    "registration of %zu bytes at %p is not protected at fork", len, addr);
}

/* The region mr holds [start, start+len), recorded per region. */
static void note(void *mr, uintptr_t start, size_t len, unsigned flags)
{
	if (sf_pin_set(SF_PIN_MR(mr), 0, start, end_of(start, len), flags, SF_SRC_VERBS) < 0)
		table_full(len, (void *)start);
}

/* Before a registration reaches libibverbs: 1 when this wrapper is the one that acts. */
static int reg_begin(const void *addr, size_t len, unsigned flags)
{
	if (!tracking() || t_inside)
		return 0;
	if (flags != SF_RANGE_NOPIN)
		sf_unshare_before_pin(addr, len);
	t_inside = 1;
	t_announced = 0;
	return 1;
}

/* After it: record per region what libibverbs did not announce. */
static void *reg_end(int mine, void *mr, uintptr_t start, size_t len, unsigned flags)
{
	if (mine) {
		t_inside = 0;
		if (mr && (flags == SF_RANGE_NOPIN || !t_announced))
			note(mr, start, len, flags);
	}
	return mr;
}

typedef void *reg_mr_fn(void *, void *, size_t, int);

/* ibv_reg_mr, either version (they differ only in the struct ibv_mr they return). */
static void *reg_mr(reg_mr_fn *real, const char *what, void *pd, void *addr, size_t length, int access)
{
	unsigned pin = pin_flags(access);

	if (!real) {
		missing(what);
		return NULL;
	}
	int mine = reg_begin(addr, length, pin);
	return reg_end(mine, real(pd, addr, length, access), (uintptr_t)addr, length, pin);
}

#if SF_HAVE_ibv_reg_mr
SF_OPT_SYMVER(ibv_reg_mr);
SF_EXPORT void *sf_opt_ibv_reg_mr(void *pd, void *addr, size_t length, int access)
{
	return reg_mr(SF_NEXT(ibv_reg_mr), "ibv_reg_mr@" SF_VER_ibv_reg_mr, pd, addr, length, access);
}
#endif

#if SF_HAVEC_ibv_reg_mr
/* ibv_reg_mr@IBVERBS_1.0: binaries from before libibverbs 1.1; it returns a struct ibv_mr_1_0. */
SF_COMPAT_SYMVER(ibv_reg_mr);
SF_EXPORT void *sf_compat_ibv_reg_mr(void *pd, void *addr, size_t length, int access)
{
	return reg_mr(SF_NEXTC(ibv_reg_mr), "ibv_reg_mr@" SF_VERC_ibv_reg_mr, pd, addr, length, access);
}
#endif

#if SF_HAVE_ibv_reg_mr_iova
SF_OPT_SYMVER(ibv_reg_mr_iova);
SF_EXPORT void *sf_opt_ibv_reg_mr_iova(void *pd, void *addr, size_t length, uint64_t iova, int access)
{
	void *(*real)(void *, void *, size_t, uint64_t, int) = SF_NEXT(ibv_reg_mr_iova);

	if (!real) {
		missing("ibv_reg_mr_iova@" SF_VER_ibv_reg_mr_iova);
		return NULL;
	}
	int mine = reg_begin(addr, length, pin_flags(access));
	return reg_end(mine, real(pd, addr, length, iova, access), (uintptr_t)addr, length, pin_flags(access));
}
#endif

#if SF_HAVE_ibv_reg_mr_iova2
SF_OPT_SYMVER(ibv_reg_mr_iova2);
SF_EXPORT void *sf_opt_ibv_reg_mr_iova2(void *pd, void *addr, size_t length, uint64_t iova, unsigned int access)
{
	void *(*real)(void *, void *, size_t, uint64_t, unsigned int) = SF_NEXT(ibv_reg_mr_iova2);

	if (!real) {
		missing("ibv_reg_mr_iova2@" SF_VER_ibv_reg_mr_iova2);
		return NULL;
	}
	int mine = reg_begin(addr, length, pin_flags((int)access));
	return reg_end(mine, real(pd, addr, length, iova, access), (uintptr_t)addr, length, pin_flags((int)access));
}
#endif

#if SF_HAVE_ibv_reg_dmabuf_mr
/* A dma-buf is not the process's memory: recorded (as libibverbs describes it: offset, length), never protected. */
SF_OPT_SYMVER(ibv_reg_dmabuf_mr);
SF_EXPORT void *sf_opt_ibv_reg_dmabuf_mr(void *pd, uint64_t offset, size_t length, uint64_t iova, int fd, int access)
{
	void *(*real)(void *, uint64_t, size_t, uint64_t, int, int) = SF_NEXT(ibv_reg_dmabuf_mr);

	if (!real) {
		missing("ibv_reg_dmabuf_mr@" SF_VER_ibv_reg_dmabuf_mr);
		return NULL;
	}
	int mine = reg_begin(NULL, 0, SF_RANGE_NOPIN);
	return reg_end(mine, real(pd, offset, length, iova, fd, access), (uintptr_t)offset, length, SF_RANGE_NOPIN);
}
#endif

#if SF_HAVE_ibv_reg_mr_ex
/* The head of struct ibv_mr_init_attr (rdma-core v59+; extended only at its end). */
struct mr_init_attr {
	size_t length;
	int access;
	uint64_t comp_mask;
	uint64_t iova;
	void *addr;
	int fd;
	uint64_t fd_offset;
};

SF_OPT_SYMVER(ibv_reg_mr_ex);
SF_EXPORT void *sf_opt_ibv_reg_mr_ex(void *pd, void *init_attr)
{
	void *(*real)(void *, void *) = SF_NEXT(ibv_reg_mr_ex);
	struct mr_init_attr a;

	if (!real) {
		missing("ibv_reg_mr_ex@" SF_VER_ibv_reg_mr_ex);
		return NULL;
	}
	/* Unreadable attributes: libibverbs says what it says about them, we record nothing. */
	if (sf_peek(&a, init_attr, sizeof(a)) < 0 || !(a.comp_mask & (MR_MASK_ADDR | MR_MASK_FD)))
		return real(pd, init_attr);
	int fd_based = (a.comp_mask & MR_MASK_FD) != 0;
	int mine = reg_begin(a.addr, a.length, fd_based ? SF_RANGE_NOPIN : pin_flags(a.access));
	void *mr = real(pd, init_attr);
	if (fd_based)
		return reg_end(mine, mr, (uintptr_t)a.fd_offset, a.length, SF_RANGE_NOPIN);
	return reg_end(mine, mr, (uintptr_t)a.addr, a.length, pin_flags(a.access));
}
#endif

#if SF_HAVE_ibv_reg_buf_mr
SF_OPT_SYMVER(ibv_reg_buf_mr);
SF_EXPORT void *sf_opt_ibv_reg_buf_mr(void *pd, void *buf, void *addr, size_t length, int access)
{
	void *(*real)(void *, void *, void *, size_t, int) = SF_NEXT(ibv_reg_buf_mr);

	if (!real) {
		missing("ibv_reg_buf_mr@" SF_VER_ibv_reg_buf_mr);
		return NULL;
	}
	/* A dma-buf backed buffer is registered fd-based and announces nothing; its mapping is shared. */
	int mine = reg_begin(addr, length, pin_flags(access));
	return reg_end(mine, real(pd, buf, addr, length, access), (uintptr_t)addr, length, pin_flags(access));
}
#endif

#if SF_HAVE_ibv_rereg_mr
SF_OPT_SYMVER(ibv_rereg_mr);
SF_EXPORT int sf_opt_ibv_rereg_mr(void *mr, int flags, void *pd, void *addr, size_t length, int access)
{
	int (*real)(void *, int, void *, void *, size_t, int) = SF_NEXT(ibv_rereg_mr);

	if (!real) {
		missing("ibv_rereg_mr@" SF_VER_ibv_rereg_mr);
		return REREG_ERR_INPUT;
	}
	if (!tracking() || t_inside)
		return real(mr, flags, pd, addr, length, access);
	long held = sf_pin_lookup(SF_PIN_MR(mr), 0); /* recorded per region */
	unsigned pin = flags & REREG_CHANGE_ACCESS ? pin_flags(access)
			: held >= 0 ? (unsigned)held : SAFEFORK_KERNEL_PIN;
	int moves = flags & REREG_CHANGE_TRANSLATION;
	if (moves && pin != SF_RANGE_NOPIN)
		sf_unshare_before_pin(addr, length);
	t_inside = 1;
	t_announced = 0;
	int rc = real(mr, flags, pd, addr, length, access);
	t_inside = 0;
	if (moves && (rc == 0 || rc == REREG_ERR_DO_FORK_OLD)) {
		/* libibverbs announces any move with dontfork(new)/dofork(old), an ODP region's too: not a pin */
		if (pin == SF_RANGE_NOPIN && t_announced)
			sf_pin_range_del((uintptr_t)addr, end_of((uintptr_t)addr, length), SAFEFORK_KERNEL_PIN,
					 SF_SRC_VERBS);
		if (held >= 0 || pin == SF_RANGE_NOPIN || !t_announced)
			note(mr, (uintptr_t)addr, length, pin);
	}
	return rc;
}
#endif

static int dereg(int (*real)(void *), void *mr)
{
	if (!tracking() || t_inside)
		return real(mr);
	long held = sf_pin_lookup(SF_PIN_MR(mr), 0);
	t_inside = 1; /* the ibv_dofork_range libibverbs calls now ends a region (source verbs) */
	int rc = real(mr);
	t_inside = 0;
	if (rc == 0 && held >= 0)
		sf_pin_clear(SF_PIN_MR(mr), 0, 1);
	return rc;
}

#if SF_HAVE_ibv_dereg_mr
SF_OPT_SYMVER(ibv_dereg_mr);
SF_EXPORT int sf_opt_ibv_dereg_mr(void *mr)
{
	int (*real)(void *) = SF_NEXT(ibv_dereg_mr);

	if (!real) {
		missing("ibv_dereg_mr@" SF_VER_ibv_dereg_mr);
		return ENOSYS;
	}
	return dereg(real, mr);
}
#endif

#if SF_HAVEC_ibv_dereg_mr
SF_COMPAT_SYMVER(ibv_dereg_mr);
SF_EXPORT int sf_compat_ibv_dereg_mr(void *mr)
{
	int (*real)(void *) = SF_NEXTC(ibv_dereg_mr);

	if (!real) {
		missing("ibv_dereg_mr@" SF_VERC_ibv_dereg_mr);
		return ENOSYS;
	}
	return dereg(real, mr);
}
#endif

/* libibverbs itself (a registration that bypassed our wrappers), or a provider's queue buffer? */
static unsigned source_uncached(const void *caller, const void *libibverbs_function)
{
	Dl_info from, lib;

	if (dladdr(caller, &from) && dladdr(libibverbs_function, &lib) && from.dli_fbase == lib.dli_fbase)
		return SF_SRC_VERBS;
	return SF_SRC_PROVIDER;
}

/*
 * dladdr() walks the loader's lists under its lock (microseconds): the
 * answer is kept per call site, caller * 4 + source in one word, in a small
 * lock-free cache (a library unloaded and another loaded at the same address
 * could only mislabel the source in the statistics).
 */
static uintptr_t source_cache[64];
_Static_assert(SF_SRC_VERBS < 4 && SF_SRC_PROVIDER < 4, "a source fits in two bits");

static unsigned source_of(const void *caller, const void *libibverbs_function)
{
	uintptr_t key = (uintptr_t)caller & (UINTPTR_MAX >> 2);
	uintptr_t *slot = &source_cache[(key >> 4) % (sizeof(source_cache) / sizeof(source_cache[0]))];
	uintptr_t e = __atomic_load_n(slot, __ATOMIC_RELAXED);

	if (e && e >> 2 == key)
		return (unsigned)(e & 3);
	unsigned src = source_uncached(caller, libibverbs_function);
	__atomic_store_n(slot, key << 2 | src, __ATOMIC_RELAXED);
	return src;
}

#if SF_HAVE_ibv_dontfork_range
SF_OPT_SYMVER(ibv_dontfork_range);
SF_EXPORT int sf_opt_ibv_dontfork_range(void *base, size_t size)
{
	int (*real)(void *, size_t) = SF_NEXT(ibv_dontfork_range);

	if (!real) {
		missing("ibv_dontfork_range@" SF_VER_ibv_dontfork_range);
		return ENOSYS;
	}
	if (!base || !size || !tracking())
		return real(base, size);
	/* The kernel pins these pages next (QP/CQ/SRQ creation, or the registration in progress). */
	if (!t_inside)
		sf_unshare_before_pin(base, size); /* (a registration wrapper did it already) */
	int rc = real(base, size);
	if (rc == 0) {
		unsigned src = t_inside ? SF_SRC_VERBS : source_of(__builtin_return_address(0), (void *)real);
		t_announced = 1;
		if (sf_pin_range_add((uintptr_t)base, end_of((uintptr_t)base, size), SAFEFORK_KERNEL_PIN, src) < 0)
			table_full(size, base);
	}
	return rc;
}
#endif

#if SF_HAVE_ibv_dofork_range
SF_OPT_SYMVER(ibv_dofork_range);
SF_EXPORT int sf_opt_ibv_dofork_range(void *base, size_t size)
{
	int (*real)(void *, size_t) = SF_NEXT(ibv_dofork_range);

	if (!real) {
		missing("ibv_dofork_range@" SF_VER_ibv_dofork_range);
		return ENOSYS;
	}
	if (!base || !size || !tracking())
		return real(base, size);
	int rc = real(base, size);
	/* The pin is gone whatever rdma-core's own bookkeeping says. */
	uintptr_t start = (uintptr_t)base, end = end_of(start, size);
	unsigned src = t_inside ? SF_SRC_VERBS : source_of(__builtin_return_address(0), (void *)real);
	t_announced = 1;
	if (sf_pin_range_del(start, end, SAFEFORK_KERNEL_PIN, src) < 0)
		sf_pin_range_del(start, end, SAFEFORK_KERNEL_PIN, src == SF_SRC_VERBS ? SF_SRC_PROVIDER : SF_SRC_VERBS);
	return rc;
}
#endif

/*
 * ibv_fork_init() (also reached from rdma-core's own RDMAV_FORK_SAFE /
 * IBV_FORK_SAFE handling, through the PLT): in the modes where the shim
 * makes forks safe itself (auto, copy, wipe) it answers success without
 * rdma-core's MADV_DONTFORK per registration, so children keep their heap
 * and no VMA stays split; in dontfork, log and off rdma-core does what it
 * does.  ibv_is_fork_initialized() answers to match.
 */
static int shim_keeps_forks_safe(void)
{
	sf_init();
	enum safefork_mode m = __atomic_load_n(&sf_mode, __ATOMIC_RELAXED);
	return m == SAFEFORK_MODE_AUTO || m == SAFEFORK_MODE_COPY || m == SAFEFORK_MODE_WIPE;
}

#if SF_HAVE_ibv_fork_init
SF_OPT_SYMVER(ibv_fork_init);
SF_EXPORT int sf_opt_ibv_fork_init(void)
{
	int (*real)(void) = SF_NEXT(ibv_fork_init);

	if (shim_keeps_forks_safe())
		return 0;
	if (!real) {
		missing("ibv_fork_init@" SF_VER_ibv_fork_init);
		return ENOSYS;
	}
	return real();
}
#endif

#if SF_HAVE_ibv_is_fork_initialized
SF_OPT_SYMVER(ibv_is_fork_initialized);
SF_EXPORT int sf_opt_ibv_is_fork_initialized(void)
{
	int (*real)(void) = SF_NEXT(ibv_is_fork_initialized);
	int r = real ? real() : FORK_DISABLED;

	/* UNNEEDED is the kernel's word (it copies pinned pages at fork): kept. */
	if (shim_keeps_forks_safe() && r != FORK_UNNEEDED)
		return FORK_ENABLED;
	return r;
}
#endif

#endif /* SF_HAVE_ibv_dereg_mr */
