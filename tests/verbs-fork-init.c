/*
 * verbs-fork-init: ibv_fork_init() under the library.  In the modes where
 * the library keeps forks safe itself (copy here; auto and wipe alike) it
 * answers success without rdma-core's per-registration MADV_DONTFORK, so a
 * registered buffer stays in the child (no "dc" VMA flag), and
 * ibv_is_fork_initialized() says ENABLED (or the kernel's UNNEEDED); the
 * same when rdma-core calls ibv_fork_init() itself for RDMAV_FORK_SAFE=1.
 * In dontfork mode, SAFEFORK_MODE=off and without the library, rdma-core
 * does what it does: the buffer gets MADV_DONTFORK.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include "pintest.h"
#include "verbs-fake.h"

static int shim_answers(void)
{
	const char *m = getenv("SAFEFORK_MODE");
	return p_tracking() && (!m || !strcmp(m, "copy") || !strcmp(m, "auto") || !strcmp(m, "wipe"));
}

static int role(const char *how)
{
	char *buf = t_map(4 * 4096);

	if (!strcmp(how, "env")) {
		int n = -1;
		struct ibv_device **l = ibv_get_device_list(&n); /* rdma-core's init: RDMAV_FORK_SAFE -> ibv_fork_init() */
		if (l)
			ibv_free_device_list(l);
	} else {
		T_CHECK(v_fork_init() == 0, "ibv_fork_init: %s", strerror(errno));
	}
	enum ibv_fork_status st = v_is_fork_initialized();
	if (shim_answers())
		T_CHECK(st == IBV_FORK_ENABLED || st == IBV_FORK_UNNEEDED, "ibv_is_fork_initialized: %d", st);
	else if (strcmp(how, "env"))
		T_CHECK(st != IBV_FORK_DISABLED, "rdma-core's ibv_is_fork_initialized: %d", st);

	T_CHECK(v_dontfork_range(buf, 4 * 4096) == 0, "ibv_dontfork_range");
	int dc = t_vmflag(buf, "dc");
	if (dc < 0)
		t_skip("no VmFlags in /proc/self/smaps");
	if (shim_answers())
		T_CHECK(dc == 0, "MADV_DONTFORK applied although the library answered ibv_fork_init");
	else
		T_CHECK(dc == 1, "rdma-core's fork support did not apply MADV_DONTFORK (%s)", how);
	T_CHECK(v_dofork_range(buf, 4 * 4096) == 0 && t_vmflag(buf, "dc") == 0, "ibv_dofork_range");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return role(argv[1]);
	p_run_with_controls(argv[0], "call", "copy", NULL);
	p_run_with_controls(argv[0], "call", "dontfork", NULL);
	p_run_with_controls(argv[0], "env", "copy", "RDMAV_FORK_SAFE=1");
	p_run_with_controls(argv[0], "env", "dontfork", "RDMAV_FORK_SAFE=1");
	t_pass("ibv_fork_init answered by the library in copy mode (no MADV_DONTFORK), left to rdma-core in "
	       "dontfork mode, off and without the library; also through RDMAV_FORK_SAFE");
}
