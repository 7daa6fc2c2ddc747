/*
 * verbs-reg: every registration entry point of libibverbs, called through
 * the real library (a fake device, verbs-fake.h), puts exactly one range
 * in the table (source verbs: libibverbs's own ibv_dontfork_range call is
 * not counted again) and its deregistration takes it out; a failed
 * registration leaves nothing and keeps libibverbs's errno; ODP and dma-buf
 * registrations are recorded but not protected at fork, ordinary ones are.
 * Controls: with SAFEFORK_MODE=off and without the library the calls
 * behave the same and the table stays empty.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "pintest.h"
#include "verbs-fake.h"

#define SRC_V SAFEFORK_SOURCE_VERBS
#define SRC_P SAFEFORK_SOURCE_PROVIDER

/* Fork once; did the library protect anything for that fork? */
static int fork_protected(void)
{
	struct safefork_stats before = p_stats();
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	T_CHECK(pid > 0 && t_wait(pid) == 0, "fork");
	return p_stats().forks_protected != before.forks_protected;
}

static struct ibv_mr *reg(struct ibv_mr *mr, const char *what)
{
	T_CHECK(mr, "%s failed: %s", what, strerror(errno));
	return mr;
}

static int role(void)
{
	char *buf = t_map(16 * 4096);
	struct ibv_mr *mr, *mr2;

	fake_setup();
	memset(buf, 'b', 16 * 4096);

	fake_next = FAKE_MR;
	mr = reg(v_reg_mr_11(&fake_pd, buf + 100, 5000, IBV_ACCESS_LOCAL_WRITE), "ibv_reg_mr@1.1");
	P_EXPECT(SRC_V, 1, 5000, "ibv_reg_mr@IBVERBS_1.1");
	P_EXPECT(SRC_P, 0, 0, "ibv_reg_mr@IBVERBS_1.1 (libibverbs's own dontfork call)");
	T_CHECK(mr->addr == buf + 100 && mr->length == 5000, "libibverbs did not fill the region");
	T_CHECK(fork_protected() == p_copying(), "an ordinary registration must be protected at fork in copy mode");
	fake_next = FAKE_OK;
	T_CHECK(v_dereg_mr_11(mr) == 0, "ibv_dereg_mr@1.1");
	P_EXPECT(SRC_V, 0, 0, "ibv_dereg_mr@IBVERBS_1.1");

	fake_next = FAKE_MR;
	void *mr10 = v_reg_mr_10(&fake_pd_10, buf, 8192, 0);
	T_CHECK(mr10, "ibv_reg_mr@1.0 failed: %s", strerror(errno));
	P_EXPECT(SRC_V, 1, 8192, "ibv_reg_mr@IBVERBS_1.0");
	fake_next = FAKE_OK;
	T_CHECK(v_dereg_mr_10(mr10) == 0, "ibv_dereg_mr@1.0");
	P_EXPECT(SRC_V, 0, 0, "ibv_dereg_mr@IBVERBS_1.0");

	fake_next = FAKE_MR;
	mr = reg(v_reg_mr_iova(&fake_pd, buf, 4096, 0x10000, 0), "ibv_reg_mr_iova");
	mr2 = reg(v_reg_mr_iova2(&fake_pd, buf + 4096, 3 * 4096, 0x20000, IBV_ACCESS_LOCAL_WRITE), "ibv_reg_mr_iova2");
	P_EXPECT(SRC_V, 2, 4 * 4096, "ibv_reg_mr_iova@1.7 + ibv_reg_mr_iova2@1.8");
	fake_next = FAKE_OK;
	T_CHECK(v_dereg_mr_11(mr) == 0 && v_dereg_mr_11(mr2) == 0, "dereg iova");
	P_EXPECT(SRC_V, 0, 0, "dereg of the iova regions");

	/* as a program built against this verbs.h writes it: the ibv_reg_mr() macro, which picks the symbol */
	fake_next = FAKE_MR;
	mr = reg(ibv_reg_mr(&fake_pd, buf, 4096, IBV_ACCESS_LOCAL_WRITE), "ibv_reg_mr() macro");
	mr2 = reg(ibv_reg_mr(&fake_pd, buf + 4096, 4096, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_RELAXED_ORDERING),
		  "ibv_reg_mr() macro with an optional access flag");
	P_EXPECT(SRC_V, 2, 8192, "the ibv_reg_mr() macro of verbs.h");
	P_EXPECT(SRC_P, 0, 0, "the ibv_reg_mr() macro of verbs.h");
	fake_next = FAKE_OK;
	T_CHECK(ibv_dereg_mr(mr) == 0 && ibv_dereg_mr(mr2) == 0, "ibv_dereg_mr()");
	P_EXPECT(SRC_V, 0, 0, "ibv_dereg_mr() of verbs.h");

	/* the same buffer twice: two regions, two ranges, each leaves with its own deregistration */
	fake_next = FAKE_MR;
	mr = reg(v_reg_mr_11(&fake_pd, buf, 4096, 0), "first of two");
	mr2 = reg(v_reg_mr_11(&fake_pd, buf, 4096, 0), "second of two");
	P_EXPECT(SRC_V, 2, 8192, "the same buffer registered twice");
	fake_next = FAKE_OK;
	T_CHECK(v_dereg_mr_11(mr) == 0, "dereg first");
	P_EXPECT(SRC_V, 1, 4096, "one of two deregistered");
	T_CHECK(v_dereg_mr_11(mr2) == 0, "dereg second");
	P_EXPECT(SRC_V, 0, 0, "both deregistered");

	/* a registration the driver refuses: nothing recorded, libibverbs's errno intact */
	fake_next = FAKE_FAIL;
	errno = 0;
	T_CHECK(v_reg_mr_11(&fake_pd, buf, 4096, 0) == NULL && errno == EFAULT, "failed registration: errno %d", errno);
	P_EXPECT(SRC_V, 0, 0, "failed registration");
	P_EXPECT(SRC_P, 0, 0, "failed registration");

	/* ODP: the device follows the page tables; recorded, never protected */
	fake_next = FAKE_MR;
	mr = reg(v_reg_mr_11(&fake_pd, buf, 8 * 4096, IBV_ACCESS_ON_DEMAND | IBV_ACCESS_LOCAL_WRITE), "ODP");
	P_EXPECT(SRC_V, 1, 8 * 4096, "ODP registration");
	T_CHECK(!fork_protected(), "an ODP registration was protected at fork");
	fake_next = FAKE_OK;
	T_CHECK(v_dereg_mr_11(mr) == 0, "dereg ODP");
	P_EXPECT(SRC_V, 0, 0, "ODP deregistration");

	/* dma-buf: not the process's memory; recorded as libibverbs describes it (offset, length) */
	fake_next = FAKE_MR;
	mr = reg(v_reg_dmabuf_mr(&fake_pd, 0x1000, 65536, 0x1000, 99, 0), "ibv_reg_dmabuf_mr");
	P_EXPECT(SRC_V, 1, 65536, "ibv_reg_dmabuf_mr@1.12");
	T_CHECK(!fork_protected(), "a dma-buf registration was protected at fork");
	fake_next = FAKE_OK;
	T_CHECK(v_dereg_mr_11(mr) == 0, "dereg dma-buf");
	P_EXPECT(SRC_V, 0, 0, "dma-buf deregistration");

	/* ibv_rereg_mr moving the region: the range follows it */
	fake_next = FAKE_MR;
	mr = reg(v_reg_mr_11(&fake_pd, buf, 4096, 0), "before rereg");
	fake_next = FAKE_OK;
	T_CHECK(v_rereg_mr(mr, IBV_REREG_MR_CHANGE_TRANSLATION, NULL, buf + 8192, 3 * 4096, 0) == 0, "ibv_rereg_mr");
	P_EXPECT(SRC_V, 1, 3 * 4096, "ibv_rereg_mr@1.1 (translation)");
	P_EXPECT(SRC_P, 0, 0, "ibv_rereg_mr@1.1");
	T_CHECK(v_rereg_mr(mr, IBV_REREG_MR_CHANGE_ACCESS, NULL, NULL, 0, IBV_ACCESS_LOCAL_WRITE) == 0, "rereg access");
	P_EXPECT(SRC_V, 1, 3 * 4096, "ibv_rereg_mr@1.1 (access only)");
	T_CHECK(v_dereg_mr_11(mr) == 0, "dereg after rereg");
	P_EXPECT(SRC_V, 0, 0, "deregistration after rereg");

	/* the pages were the program's all along */
	for (size_t i = 0; i < 16 * 4096; i++)
		T_CHECK(buf[i] == 'b', "buffer changed at %zu", i);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return role();
	p_run_with_controls(argv[0], "reg", "copy", NULL);
	t_pass("reg_mr@1.0/@1.1, _iova, _iova2, dmabuf, rereg, dereg@1.0/@1.1: one range per region, in and out; "
	       "ODP and dma-buf recorded, not protected");
}
