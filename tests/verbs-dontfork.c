/*
 * verbs-dontfork: what providers call for their queue and doorbell buffers
 * (ibv_dontfork_range / ibv_dofork_range, here called by the program as a
 * provider would) puts the range in the table (source provider; identical
 * calls count up, as rdma-core's own bookkeeping does) and takes it out;
 * such a range is protected at fork.
 *
 * Unshare before pin: a page still shared copy-on-write with an earlier
 * child (the pagemap "exclusively mapped" bit clear) is the parent's own
 * after ibv_dontfork_range or a read-only ibv_reg_mr, content unchanged;
 * read-only mappings and ODP registrations are left as they are.  Only on
 * kernels before 5.19: later ones unshare on pin themselves, and there the
 * library leaves the pages alone (no system call on the registration path).
 * Controls: SAFEFORK_MODE=off and no library leave the pages shared.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "pintest.h"
#include "verbs-fake.h"

#define SRC_P SAFEFORK_SOURCE_PROVIDER
#define LEN (4 * 4096ul)

static int table_role(void)
{
	char *q = t_map(LEN);

	T_CHECK(v_dontfork_range(q, LEN) == 0, "ibv_dontfork_range");
	P_EXPECT(SRC_P, 1, LEN, "ibv_dontfork_range");
	P_EXPECT(SAFEFORK_SOURCE_VERBS, 0, 0, "ibv_dontfork_range from the program");
	T_CHECK(v_dontfork_range(q, LEN) == 0, "ibv_dontfork_range again");
	P_EXPECT(SRC_P, 2, 2 * LEN, "the same range twice");
	T_CHECK(v_dontfork_range(q + 4096, 100) == 0, "a part of it");
	P_EXPECT(SRC_P, 3, 2 * LEN + 100, "nested range");

	p_fork_protected_iff_copying("a provider's buffer");

	T_CHECK(v_dofork_range(q + 4096, 100) == 0, "ibv_dofork_range nested");
	T_CHECK(v_dofork_range(q, LEN) == 0, "ibv_dofork_range");
	P_EXPECT(SRC_P, 1, LEN, "one of two identical ranges withdrawn");
	T_CHECK(v_dofork_range(q, LEN) == 0, "ibv_dofork_range again");
	P_EXPECT(SRC_P, 0, 0, "all withdrawn");
	/* never registered, NULL, empty: passed through, nothing recorded, nothing said */
	T_CHECK(v_dofork_range(q, 4096) == 0 && v_dontfork_range(NULL, 0) == 0 && v_dofork_range(NULL, 0) == 0,
		"odd calls");
	P_EXPECT(SRC_P, 0, 0, "odd calls");
	return 0;
}

/* A child that keeps every page of the parent shared until told to go. */
static int hold_fd = -1;
static pid_t holder;

static void share_with_child(void)
{
	int p[2];
	T_CHECK(pipe(p) == 0, "pipe");
	holder = fork();
	if (holder == 0) {
		char c;
		close(p[1]);
		_exit(read(p[0], &c, 1) < 0);
	}
	T_CHECK(holder > 0, "fork");
	close(p[0]);
	hold_fd = p[1];
}

static void release_child(void)
{
	close(hold_fd);
	T_CHECK(t_wait(holder) == 0, "holder child");
}

static int all_exclusive(const char *p, size_t len)
{
	for (size_t off = 0; off < len; off += 4096)
		if (!t_page_exclusive(p + off))
			return 0;
	return 1;
}

static int none_exclusive(const char *p, size_t len)
{
	for (size_t off = 0; off < len; off += 4096)
		if (t_page_exclusive(p + off))
			return 0;
	return 1;
}

/* Does the running kernel unshare a page shared with a child when it pins it (5.19+)? */
static int kernel_unshares_on_pin(void)
{
	struct utsname u;
	int a = 0, b = 0;

	T_CHECK(uname(&u) == 0 && sscanf(u.release, "%d.%d", &a, &b) == 2, "uname");
	return a > 5 || (a == 5 && b >= 19);
}

static int unshare_role(void)
{
	char *a = t_map(LEN), *b = t_map(LEN), *odp = t_map(LEN);
	char *ro = t_map(LEN), *mix = t_map(2 * LEN);
	int want = p_copying() && !kernel_unshares_on_pin();

	fake_setup();
	memset(a, 'a', LEN);
	memset(b, 'b', LEN);
	memset(odp, 'o', LEN);
	memset(ro, 'r', LEN);
	memset(mix, 'm', 2 * LEN);
	T_CHECK(mprotect(ro, LEN, PROT_READ) == 0 && mprotect(mix + LEN, LEN, PROT_READ) == 0, "mprotect");
	share_with_child();
	T_CHECK(none_exclusive(a, LEN) && none_exclusive(b, LEN) && none_exclusive(ro, LEN),
		"the pages should be shared with the child now");

	T_CHECK(v_dontfork_range(a, LEN) == 0, "ibv_dontfork_range");
	T_CHECK(want ? all_exclusive(a, LEN) : none_exclusive(a, LEN),
		"after ibv_dontfork_range the pages should %s", want ? "be the parent's alone" : "stay shared");

	/* a read-only registration (no local write): the kernel would pin without breaking the sharing */
	fake_next = FAKE_MR;
	struct ibv_mr *mr = v_reg_mr_11(&fake_pd, b + 1, LEN - 2, 0);
	T_CHECK(mr, "ibv_reg_mr: %s", strerror(errno));
	T_CHECK(want ? all_exclusive(b, LEN) : none_exclusive(b, LEN),
		"after a read-only ibv_reg_mr the pages should %s", want ? "be the parent's alone" : "stay shared");
	struct ibv_mr *omr = v_reg_mr_11(&fake_pd, odp, LEN, IBV_ACCESS_ON_DEMAND);
	T_CHECK(omr && none_exclusive(odp, LEN), "an ODP registration pins nothing: its pages stay shared");

	/* a read-only mapping: no write fault there (it would kill us); left shared */
	T_CHECK(v_dontfork_range(ro, LEN) == 0 && none_exclusive(ro, LEN), "read-only mapping");

	/* writable then read-only: mapping by mapping */
	T_CHECK(v_dontfork_range(mix, 2 * LEN) == 0, "ibv_dontfork_range over two mappings");
	T_CHECK((want ? all_exclusive(mix, LEN) : none_exclusive(mix, LEN)) && none_exclusive(mix + LEN, LEN),
		"over a writable and a read-only mapping the writable pages should %s, the others stay shared",
		want ? "be the parent's alone" : "stay shared");

	for (size_t i = 0; i < LEN; i++)
		T_CHECK(mix[i] == 'm' && mix[LEN + i] == 'm', "content changed at %zu", i);
	for (size_t i = 0; i < LEN; i++)
		T_CHECK(a[i] == 'a' && b[i] == 'b' && odp[i] == 'o' && ro[i] == 'r', "content changed at %zu", i);
	release_child();
	fake_next = FAKE_OK;
	T_CHECK(v_dereg_mr_11(mr) == 0 && v_dereg_mr_11(omr) == 0, "dereg");
	T_CHECK(v_dofork_range(a, LEN) == 0 && v_dofork_range(ro, LEN) == 0 && v_dofork_range(mix, 2 * LEN) == 0,
		"dofork");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return !strcmp(argv[1], "table") ? table_role() : unshare_role();
	char *p = t_map(4096);
	*p = 1;
	if (!t_page_exclusive(p))
		t_skip("this kernel's pagemap has no \"exclusively mapped\" bit");
	p_run_with_controls(argv[0], "table", "copy", NULL);
	p_run_with_controls(argv[0], "unshare", "copy", NULL);
	t_pass("ibv_dontfork_range/ibv_dofork_range ranges in and out of the table, protected at fork; pages "
	       "%s before a pin, read-only mappings and ODP left alone",
	       kernel_unshares_on_pin() ? "left to the kernel's unshare-on-pin (5.19+)" : "unshared");
}
