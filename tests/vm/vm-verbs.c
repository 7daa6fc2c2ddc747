/*
 * vm-verbs - fork() against real RDMA verbs (soft-RoCE, rdma_rxe) in a VM.
 *
 *   vm-verbs SCENARIO      one scenario, one RESULT line (see vmtest.h)
 *   vm-verbs --list        the scenarios
 *
 * Two RC queue pairs on the first device, connected to each other through
 * the RoCE v2 GID of ::ffff:127.0.0.1 (rxe on lo): QP a issues RDMA READ and
 * WRITE against a 2 MiB memory region of this process, which the device
 * accesses through the physical pages it pinned at ibv_reg_mr().
 *
 * SCENARIO is KIND-OP, KIND one of normal, thp, hugetlb; OP one of
 *   read        register, fork, the parent writes, RDMA READ: new data?
 *   write       register, fork, the parent writes, RDMA WRITE: does the parent see it?
 *   exit        as both, after the child has exited
 *   regshared-rw  fork first, register while COW-shared with the child
 *               (writable MR), the parent writes: READ and WRITE coherent?
 *   regshared-ro  the same with a read-only MR (REMOTE_READ): READ coherent?
 * and "queues": QPs and CQs made before the fork, send/receive and RDMA
 * READ after it (the provider's internal queue buffers).
 */
#include <infiniband/verbs.h>
#include <sched.h>
#include <time.h>

#include "vmtest.h"

struct rdma {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qa, *qb;
	unsigned char *scratch; /* local side of READ and WRITE: normal pages */
	struct ibv_mr *smr;
};

static void rdma_modify(struct ibv_qp *qp, struct ibv_qp *peer, const union ibv_gid *gid, int gidx,
			enum ibv_mtu mtu)
{
	struct ibv_qp_attr a;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.port_num = 1;
	a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		vt_error("modify QP to INIT");
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = mtu;
	a.dest_qp_num = peer->qp_num;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.dgid = *gid;
	a.ah_attr.grh.sgid_index = (uint8_t)gidx;
	a.ah_attr.grh.hop_limit = 1;
	a.ah_attr.port_num = 1;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
					  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		vt_error("modify QP to RTR");
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
					  IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC))
		vt_error("modify QP to RTS");
}

static void rdma_open(struct rdma *r)
{
	int n;
	struct ibv_device **list = ibv_get_device_list(&n);
	struct ibv_port_attr port;
	union ibv_gid gid;
	static const uint8_t lo4[16] = { [10] = 0xff, [11] = 0xff, [12] = 127, [13] = 0, [14] = 0, [15] = 1 };
	int gidx = -1;

	if (!list || n == 0)
		vt_skip("no RDMA device (rdma link add rxe0 type rxe netdev lo)");
	r->ctx = ibv_open_device(list[0]);
	if (!r->ctx)
		vt_error("ibv_open_device %s", ibv_get_device_name(list[0]));
	ibv_free_device_list(list);
	if (ibv_query_port(r->ctx, 1, &port))
		vt_error("ibv_query_port");
	for (int i = 0; i < port.gid_tbl_len && gidx < 0; i++)
		if (ibv_query_gid(r->ctx, 1, i, &gid) == 0 && !memcmp(gid.raw, lo4, 16))
			gidx = i;
	if (gidx < 0)
		vt_skip("no GID ::ffff:127.0.0.1 on port 1 (is lo up?)");
	r->pd = ibv_alloc_pd(r->ctx);
	r->cq = r->pd ? ibv_create_cq(r->ctx, 64, NULL, NULL, 0) : NULL;
	if (!r->cq)
		vt_error("ibv_alloc_pd/ibv_create_cq");
	struct ibv_qp_init_attr qa = {
		.send_cq = r->cq,
		.recv_cq = r->cq,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16, .max_send_sge = 1, .max_recv_sge = 1 },
		.qp_type = IBV_QPT_RC,
	};
	r->qa = ibv_create_qp(r->pd, &qa);
	r->qb = ibv_create_qp(r->pd, &qa);
	if (!r->qa || !r->qb)
		vt_error("ibv_create_qp");
	rdma_modify(r->qa, r->qb, &gid, gidx, port.active_mtu);
	rdma_modify(r->qb, r->qa, &gid, gidx, port.active_mtu);
	r->scratch = vt_buffer("normal");
	r->smr = ibv_reg_mr(r->pd, r->scratch, BUF_LEN, IBV_ACCESS_LOCAL_WRITE);
	if (!r->smr)
		vt_error("ibv_reg_mr (scratch)");
}

/* Wait for n completions; all must succeed. */
static void rdma_wait(struct rdma *r, int n, const char *what)
{
	struct ibv_wc wc;
	time_t end = time(NULL) + 30;
	while (n > 0) {
		int got = ibv_poll_cq(r->cq, 1, &wc);
		if (got < 0)
			vt_error("ibv_poll_cq");
		if (got == 0) {
			if (time(NULL) > end)
				vt_error("%s: no completion in 30 s", what);
			sched_yield();
			continue;
		}
		if (wc.status != IBV_WC_SUCCESS) {
			errno = 0;
			vt_error("%s: completion %s", what, ibv_wc_status_str(wc.status));
		}
		n--;
	}
}

/* RDMA READ (remote -> scratch) or WRITE (scratch -> remote) of len bytes over QP a. */
static void rdma_rw(struct rdma *r, enum ibv_wr_opcode op, struct ibv_mr *mr, size_t len)
{
	struct ibv_sge sge = { .addr = (uintptr_t)r->scratch, .length = (uint32_t)len, .lkey = r->smr->lkey };
	struct ibv_send_wr wr = { .sg_list = &sge, .num_sge = 1, .opcode = op, .send_flags = IBV_SEND_SIGNALED }, *bad;
	wr.wr.rdma.remote_addr = (uintptr_t)mr->addr;
	wr.wr.rdma.rkey = mr->rkey;
	if (ibv_post_send(r->qa, &wr, &bad))
		vt_error("ibv_post_send");
	rdma_wait(r, 1, op == IBV_WR_RDMA_READ ? "RDMA READ" : "RDMA WRITE");
}

/* Pages of the region that an RDMA READ does not return as `byte` (the parent's current data). */
static int rdma_stale(struct rdma *r, struct ibv_mr *mr, int byte)
{
	memset(r->scratch, 0, BUF_LEN);
	rdma_rw(r, IBV_WR_RDMA_READ, mr, BUF_LEN);
	return vt_bad_pages(r->scratch, BUF_LEN, byte);
}

/* Pages of buf where the parent does not see an RDMA WRITE of `byte`. */
static int rdma_lost(struct rdma *r, struct ibv_mr *mr, unsigned char *buf, int byte)
{
	memset(r->scratch, byte, BUF_LEN);
	rdma_rw(r, IBV_WR_RDMA_WRITE, mr, BUF_LEN);
	return vt_bad_pages(buf, BUF_LEN, byte);
}

/* Send/receive through QP a -> b, then an RDMA READ: the queues work.  0 or a reason. */
static const char *rdma_queues(struct rdma *r, unsigned char *sbuf, unsigned char *rbuf, struct ibv_mr *mr, int rounds)
{
	for (int i = 0; i < rounds; i++) {
		struct ibv_sge rs = { .addr = (uintptr_t)rbuf, .length = PG, .lkey = mr->lkey };
		struct ibv_recv_wr rw = { .wr_id = 1, .sg_list = &rs, .num_sge = 1 }, *rbad;
		struct ibv_sge ss = { .addr = (uintptr_t)sbuf, .length = PG, .lkey = mr->lkey };
		struct ibv_send_wr sw = { .wr_id = 2, .sg_list = &ss, .num_sge = 1, .opcode = IBV_WR_SEND,
					  .send_flags = IBV_SEND_SIGNALED }, *sbad;
		memset(sbuf, i & 0xff, PG);
		memset(rbuf, 0xee, PG);
		if (ibv_post_recv(r->qb, &rw, &rbad))
			return "ibv_post_recv failed";
		if (ibv_post_send(r->qa, &sw, &sbad))
			return "ibv_post_send failed";
		rdma_wait(r, 2, "send/receive");
		if (vt_bad_pages(rbuf, PG, i & 0xff))
			return "received data differ";
	}
	memset(sbuf, 0x77, PG);
	struct ibv_sge ls = { .addr = (uintptr_t)rbuf, .length = PG, .lkey = mr->lkey };
	struct ibv_send_wr rd = { .sg_list = &ls, .num_sge = 1, .opcode = IBV_WR_RDMA_READ,
				  .send_flags = IBV_SEND_SIGNALED }, *bad;
	rd.wr.rdma.remote_addr = (uintptr_t)sbuf;
	rd.wr.rdma.rkey = mr->rkey;
	if (ibv_post_send(r->qa, &rd, &bad))
		return "ibv_post_send (READ) failed";
	rdma_wait(r, 1, "RDMA READ");
	return vt_bad_pages(rbuf, PG, 0x77) ? "RDMA READ data differ" : NULL;
}

static const char *const scenarios[] = {
	"normal-read", "normal-write", "normal-exit", "normal-regshared-rw", "normal-regshared-ro",
	"thp-read", "thp-write", "thp-exit", "thp-regshared-rw", "thp-regshared-ro",
	"hugetlb-read", "hugetlb-write", "hugetlb-exit", "hugetlb-regshared-rw", "hugetlb-regshared-ro",
	"queues",
};

static int run_queues(void)
{
	struct rdma r;
	struct vt_child c;
	rdma_open(&r);
	unsigned char *buf = vt_buffer("normal");
	struct ibv_mr *mr = ibv_reg_mr(r.pd, buf, 2 * PG, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
	if (!mr)
		vt_error("ibv_reg_mr");
	const char *why = rdma_queues(&r, buf, buf + PG, mr, 2);
	if (why)
		vt_error("before any fork: %s", why);
	memset(buf, PAT_A, BUF_LEN);
	vt_fork(&c, buf);
	/* 40 rounds: the 16-entry queues and the 64-entry CQ wrap after the fork */
	why = rdma_queues(&r, buf, buf + PG, mr, 40);
	vt_child_finish(&c);
	if (!why)
		why = rdma_queues(&r, buf, buf + PG, mr, 4);
	vt_result("%s child=%s%s%s", why ? "BROKEN" : "COHERENT", vt_child_word(c.status), why ? " " : "",
		  why ? why : "");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: vm-verbs SCENARIO | --list\n");
		return 2;
	}
	if (!strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < sizeof(scenarios) / sizeof(*scenarios); i++)
			printf("%s\n", scenarios[i]);
		return 0;
	}
	scenario = argv[1];
	if (!strcmp(scenario, "queues"))
		return run_queues();

	char kind[16];
	const char *op = strchr(scenario, '-');
	if (!op || (size_t)(op - scenario) >= sizeof(kind))
		vt_error("unknown scenario");
	memcpy(kind, scenario, (size_t)(op - scenario));
	kind[op - scenario] = 0;
	op++;
	if (strcmp(kind, "normal") && strcmp(kind, "thp") && strcmp(kind, "hugetlb"))
		vt_error("unknown buffer kind");

	struct rdma r;
	struct vt_child c;
	int stale = 0, lost = 0, leak;
	int rw = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
	char extra[96] = "";
	rdma_open(&r);
	unsigned char *buf = vt_buffer(kind);
	struct ibv_mr *mr = NULL;

	if (!strncmp(op, "regshared-", 10)) {
		int ro = !strcmp(op, "regshared-ro");
		if (!ro && strcmp(op, "regshared-rw"))
			vt_error("unknown scenario");
		vt_fork(&c, buf); /* the buffer is COW-shared with the child ... */
		mr = ibv_reg_mr(r.pd, buf, BUF_LEN, ro ? IBV_ACCESS_REMOTE_READ : rw); /* ... when registered */
		if (!mr)
			vt_error("ibv_reg_mr while shared");
		memset(buf, PAT_B, BUF_LEN);
		stale = rdma_stale(&r, mr, PAT_B);
		if (!ro)
			lost = rdma_lost(&r, mr, buf, PAT_C);
		vt_child_finish(&c);
	} else {
		mr = ibv_reg_mr(r.pd, buf, BUF_LEN, rw);
		if (!mr)
			vt_error("ibv_reg_mr");
		if (rdma_stale(&r, mr, PAT_A))
			vt_error("RDMA READ before any fork does not return the buffer");
		vt_fork(&c, buf);
		memset(buf, PAT_B, BUF_LEN); /* the parent's next batch */
		if (!strcmp(op, "read")) {
			stale = rdma_stale(&r, mr, PAT_B);
			vt_child_finish(&c);
		} else if (!strcmp(op, "write")) {
			lost = rdma_lost(&r, mr, buf, PAT_C);
			vt_child_finish(&c); /* CH_SAW_DEVICE: the write landed in the child's copy */
		} else if (!strcmp(op, "exit")) {
			vt_child_finish(&c);
			stale = rdma_stale(&r, mr, PAT_B);
			lost = rdma_lost(&r, mr, buf, PAT_E);
			snprintf(extra, sizeof(extra), "(after the child exited)");
		} else {
			vt_error("unknown scenario");
		}
	}
	leak = vt_bad_pages(buf, BUF_LEN, PAT_D) < PAGES; /* the child's own write reached the parent */
	vt_report(stale, lost, leak, c.status, extra[0] ? extra : NULL);
	ibv_dereg_mr(mr);
	return 0;
}
