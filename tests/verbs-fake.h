/*
 * verbs-fake.h - driving the real libibverbs without an RDMA device.
 *
 * libibverbs reaches its driver through the device context's private ops
 * table (verbs_context.priv, whose layout is private to libibverbs): priv
 * points here at a block whose every word is fake_op, so whichever driver
 * operation libibverbs calls, fake_op answers, as fake_next says: a new
 * memory region (a zeroed block: an ordinary MR to libibverbs), success
 * (0), or a failure with errno.  The device is a zeroed block (no optional
 * capabilities).  Everything libibverbs itself does around the driver call
 * (its ibv_dontfork_range/ibv_dofork_range calls, the 1.0 compat objects)
 * runs for real.  Tests run each scenario without libsafefork too: if that
 * run crashes, libibverbs's internals differ from these assumptions and
 * the test skips.
 *
 * Each wrapped symbol version is referenced explicitly (.symver), as a
 * binary linked against that version would.
 */
#ifndef T_VERBS_FAKE_H
#define T_VERBS_FAKE_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <infiniband/verbs.h>

/* ---- one reference per wrapped symbol version (V_NO_REFS: for a binary not linked with libibverbs) ---- */
#ifndef V_NO_REFS
#define V_REF(alias, sym, ver, ret, params) \
	__asm__(".symver " #alias ", " #sym "@" ver); \
	extern ret alias params;
V_REF(v_reg_mr_10, ibv_reg_mr, "IBVERBS_1.0", void *, (void *, void *, size_t, int))
V_REF(v_reg_mr_11, ibv_reg_mr, "IBVERBS_1.1", struct ibv_mr *, (struct ibv_pd *, void *, size_t, int))
V_REF(v_reg_mr_iova, ibv_reg_mr_iova, "IBVERBS_1.7", struct ibv_mr *,
      (struct ibv_pd *, void *, size_t, uint64_t, int))
V_REF(v_reg_mr_iova2, ibv_reg_mr_iova2, "IBVERBS_1.8", struct ibv_mr *,
      (struct ibv_pd *, void *, size_t, uint64_t, unsigned))
V_REF(v_reg_dmabuf_mr, ibv_reg_dmabuf_mr, "IBVERBS_1.12", struct ibv_mr *,
      (struct ibv_pd *, uint64_t, size_t, uint64_t, int, int))
V_REF(v_rereg_mr, ibv_rereg_mr, "IBVERBS_1.1", int, (struct ibv_mr *, int, struct ibv_pd *, void *, size_t, int))
V_REF(v_dereg_mr_10, ibv_dereg_mr, "IBVERBS_1.0", int, (void *))
V_REF(v_dereg_mr_11, ibv_dereg_mr, "IBVERBS_1.1", int, (struct ibv_mr *))
V_REF(v_dontfork_range, ibv_dontfork_range, "IBVERBS_1.1", int, (void *, size_t))
V_REF(v_dofork_range, ibv_dofork_range, "IBVERBS_1.1", int, (void *, size_t))
V_REF(v_fork_init, ibv_fork_init, "IBVERBS_1.1", int, (void))
V_REF(v_is_fork_initialized, ibv_is_fork_initialized, "IBVERBS_1.13", enum ibv_fork_status, (void))

struct v_ref {
	const char *name, *version;
	void *addr;
};
#define V_REF_ENTRY(alias, sym, ver) { #sym, ver, (void *)alias }
static const struct v_ref v_refs[] = {
	V_REF_ENTRY(v_reg_mr_10, ibv_reg_mr, "IBVERBS_1.0"),
	V_REF_ENTRY(v_reg_mr_11, ibv_reg_mr, "IBVERBS_1.1"),
	V_REF_ENTRY(v_reg_mr_iova, ibv_reg_mr_iova, "IBVERBS_1.7"),
	V_REF_ENTRY(v_reg_mr_iova2, ibv_reg_mr_iova2, "IBVERBS_1.8"),
	V_REF_ENTRY(v_reg_dmabuf_mr, ibv_reg_dmabuf_mr, "IBVERBS_1.12"),
	V_REF_ENTRY(v_rereg_mr, ibv_rereg_mr, "IBVERBS_1.1"),
	V_REF_ENTRY(v_dereg_mr_10, ibv_dereg_mr, "IBVERBS_1.0"),
	V_REF_ENTRY(v_dereg_mr_11, ibv_dereg_mr, "IBVERBS_1.1"),
	V_REF_ENTRY(v_dontfork_range, ibv_dontfork_range, "IBVERBS_1.1"),
	V_REF_ENTRY(v_dofork_range, ibv_dofork_range, "IBVERBS_1.1"),
	V_REF_ENTRY(v_fork_init, ibv_fork_init, "IBVERBS_1.1"),
	V_REF_ENTRY(v_is_fork_initialized, ibv_is_fork_initialized, "IBVERBS_1.13"),
};
#define V_NREFS (sizeof(v_refs) / sizeof(v_refs[0]))
#endif

/* ---- the fake device ---- */
enum { FAKE_MR, FAKE_OK, FAKE_FAIL };
static int fake_next = FAKE_OK;
static uint64_t fake_mrs[16][64]; /* zeroed: mr_type IBV_MR_TYPE_MR, access 0 */
static unsigned fake_nmr;
static void *fake_ops[4096];
static uint64_t fake_device[1024];
static struct verbs_context fake_vctx;
static struct ibv_pd fake_pd;
/* IBVERBS_1.0's protection domain (libibverbs's compat-1_0.c): the compat calls use real_pd. */
static struct {
	void *context;
	uint32_t handle;
	struct ibv_pd *real_pd;
} fake_pd_10;

static __attribute__((unused)) void *fake_op(void)
{
	switch (fake_next) {
	case FAKE_MR:
		return memset(fake_mrs[fake_nmr++ % 16], 0, sizeof(fake_mrs[0]));
	case FAKE_FAIL:
		errno = EFAULT;
		return NULL;
	default:
		return NULL; /* 0: success for the int-returning operations */
	}
}

static __attribute__((unused)) void fake_setup(void)
{
	for (size_t i = 0; i < sizeof(fake_ops) / sizeof(fake_ops[0]); i++)
		fake_ops[i] = (void *)fake_op;
	fake_vctx.priv = (struct verbs_ex_private *)(void *)fake_ops;
	fake_vctx.sz = sizeof(fake_vctx);
	fake_vctx.context.device = (struct ibv_device *)(void *)fake_device;
	fake_vctx.context.abi_compat = __VERBS_ABI_IS_EXTENDED;
	fake_pd.context = &fake_vctx.context;
	fake_pd_10.real_pd = &fake_pd;
}

#endif
