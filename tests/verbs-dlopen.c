/*
 * verbs-dlopen: a program that is not linked with libibverbs (nor liburing).
 *   absent - the library's wrappers do not change what it sees: dlsym()
 *            finds no ibv_reg_mr, ibv_dontfork_range, io_uring_register_buffers.
 *   bypass - as NCCL does: dlopen("libibverbs.so.1", RTLD_LOCAL) and
 *            dlvsym() on that handle, past every wrapper of ibv_reg_mr; the
 *            registration still reaches the table (through libibverbs's own
 *            call of ibv_dontfork_range, source verbs) and leaves it at
 *            ibv_dereg_mr; the wrapper found libibverbs although it is
 *            outside the global scope.
 *   hunt   - a versioned lookup (dlvsym(RTLD_DEFAULT, "ibv_reg_mr",
 *            "IBVERBS_1.1")) does find the wrapper; calling it fails with
 *            ENOSYS and one line, since there is no libibverbs behind it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#define V_NO_REFS
#include "pintest.h"
#include "verbs-fake.h"

static int absent(void)
{
	const char *names[] = { "ibv_reg_mr", "ibv_dereg_mr", "ibv_dontfork_range", "ibv_fork_init",
				"io_uring_register_buffers", "io_uring_queue_exit" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		T_CHECK(!dlsym(RTLD_DEFAULT, names[i]), "dlsym(RTLD_DEFAULT, \"%s\") found something", names[i]);
	return 0;
}

static int bypass(void)
{
	void *h = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		t_skip("cannot dlopen libibverbs.so.1: %s", dlerror());
	struct ibv_mr *(*reg)(struct ibv_pd *, void *, size_t, int) =
		(struct ibv_mr * (*)(struct ibv_pd *, void *, size_t, int)) dlvsym(h, "ibv_reg_mr", "IBVERBS_1.1");
	int (*dereg)(struct ibv_mr *) = (int (*)(struct ibv_mr *))dlvsym(h, "ibv_dereg_mr", "IBVERBS_1.1");
	T_CHECK(reg && dereg, "dlvsym on libibverbs");
	char *buf = t_map(8 * 4096);
	fake_setup();
	fake_next = FAKE_MR;
	struct ibv_mr *mr = reg(&fake_pd, buf, 3 * 4096, IBV_ACCESS_LOCAL_WRITE);
	T_CHECK(mr, "ibv_reg_mr through the handle: %s", strerror(errno));
	P_EXPECT(SAFEFORK_SOURCE_VERBS, 1, 3 * 4096, "a registration bound with dlvsym on a RTLD_LOCAL handle");
	P_EXPECT(SAFEFORK_SOURCE_PROVIDER, 0, 0, "a registration bound with dlvsym on a RTLD_LOCAL handle");
	fake_next = FAKE_OK;
	T_CHECK(dereg(mr) == 0, "ibv_dereg_mr through the handle");
	P_EXPECT(SAFEFORK_SOURCE_VERBS, 0, 0, "its deregistration");

	/* the same buffer in two regions; one goes, and its address is reused for another region */
	fake_next = FAKE_MR;
	unsigned first = fake_nmr;
	struct ibv_mr *a = reg(&fake_pd, buf, 4096, 0), *b = reg(&fake_pd, buf, 4096, 0);
	T_CHECK(a && b, "two registrations");
	P_EXPECT(SAFEFORK_SOURCE_VERBS, 2, 8192, "one buffer, two regions");
	fake_next = FAKE_OK;
	T_CHECK(dereg(a) == 0, "dereg one");
	fake_next = FAKE_MR;
	fake_nmr = first; /* the driver hands out the same object again */
	struct ibv_mr *c = reg(&fake_pd, buf + 4096, 3 * 4096, 0);
	T_CHECK(c == a, "the fake driver should have reused the region object");
	P_EXPECT(SAFEFORK_SOURCE_VERBS, 2, 4 * 4096, "a region object reused after a deregistration");
	fake_next = FAKE_OK;
	T_CHECK(dereg(b) == 0 && dereg(c) == 0, "dereg the rest");
	P_EXPECT(SAFEFORK_SOURCE_VERBS, 0, 0, "all deregistered");
	return 0;
}

static int hunt(void)
{
	void *(*reg)(void *, void *, size_t, int) =
		(void *(*)(void *, void *, size_t, int))dlvsym(RTLD_DEFAULT, "ibv_reg_mr", "IBVERBS_1.1");
	if (!t_lib_loaded()) {
		T_CHECK(!reg, "ibv_reg_mr@IBVERBS_1.1 found without libibverbs and without the library");
		return 0;
	}
	T_CHECK(reg, "the wrapper is exported as ibv_reg_mr@IBVERBS_1.1");
	errno = 0;
	T_CHECK(reg(NULL, NULL, 0, 0) == NULL && errno == ENOSYS, "the orphan wrapper: errno %d", errno);
	T_CHECK(reg(NULL, NULL, 0, 0) == NULL && errno == ENOSYS, "the orphan wrapper, again");
	return 0;
}

int main(int argc, char **argv)
{
	char err[4096];

	if (argc > 1)
		return !strcmp(argv[1], "absent") ? absent() : !strcmp(argv[1], "bypass") ? bypass() : hunt();
	p_run_with_controls(argv[0], "absent", "copy", NULL);
	p_run_with_controls(argv[0], "bypass", "copy", NULL);
	T_CHECK(t_run(argv[0], "hunt", 0, NULL, NULL, err, sizeof(err)) == 0, "hunt without the library");
	T_CHECK(t_run(argv[0], "hunt", 1, "copy", NULL, err, sizeof(err)) == 0, "hunt with the library");
	T_CHECK(!strncmp(err, "safefork: ", 10) && strstr(err, "ibv_reg_mr@IBVERBS_1.1") &&
			strchr(err, '\n') == err + strlen(err) - 1,
		"the orphan wrapper should say so in one line, got \"%s\"", err);
	t_pass("no ibv_*/io_uring_* symbol appears to a program without the libraries; a RTLD_LOCAL "
	       "libibverbs bound with dlvsym is still seen; an orphan wrapper fails with ENOSYS and one line");
}
