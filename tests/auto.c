/*
 * auto: the default mode decides by probing the kernel.  On a kernel with
 * early COW (5.9+) ranges the kernel pins itself (SAFEFORK_KERNEL_PIN) are
 * left to it, so the vmsplice "device" (which is not a pin) goes stale;
 * explicit ranges are always copied.  SAFEFORK_DEBUG=1 prints the findings:
 * from PFNs as root, from the exclusive bit otherwise, and from the kernel
 * version when io_uring is disabled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "harness.h"
#include "safefork.h"

#define DISABLED "/proc/sys/kernel/io_uring_disabled"

static int version_at_least(int maj, int min)
{
	struct utsname u;
	int a = 0, b = 0;
	uname(&u);
	sscanf(u.release, "%d.%d", &a, &b);
	return a > maj || (a == maj && b >= min);
}

static int role(const char *which)
{
	size_t len = 8 * 4096;
	struct t_case c = { .reg = t_map(len), .reg_len = len, .register_it = 1 };
	if (!strcmp(which, "kernel-pin"))
		c.flags = SAFEFORK_KERNEL_PIN;
	return t_case_run(&c);
}

static int write_file(const char *path, const char *v)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(v, f);
	return fclose(f);
}

int main(int argc, char **argv)
{
	char err[4096];

	if (argc > 1)
		return role(argv[1]);
	int early = version_at_least(5, 9);

	/* explicit ranges: copied whatever the kernel */
	T_CHECK(t_run(argv[0], "explicit", 1, NULL, "SAFEFORK_DEBUG=1", err, sizeof(err)) == T_COHERENT,
		"auto must copy explicit ranges");
	T_CHECK(strstr(err, "early COW of pinned pages at fork: ") != NULL, "no probe report: %s", err);
	t_note("probe as root: %.*s", (int)(strchr(err, '\n') ? strchr(err, '\n') - err : 0), err);
	if (t_can_see_pfns())
		T_CHECK(strstr(err, "(probe: io_uring-pinned page, PFNs)"), "root probe should use PFNs: %s", err);
	T_CHECK(strstr(err, early ? "at fork: yes" : "at fork: NO"), "probe disagrees with the kernel version: %s", err);

	/* kernel pins on an early-COW kernel: left to the kernel (the vmsplice device is no pin: stale) */
	int st = t_run(argv[0], "kernel-pin", 1, NULL, NULL, NULL, 0);
	T_CHECK(st == (early ? T_STALE : T_COHERENT), "auto with SAFEFORK_KERNEL_PIN: got %d", st);
	t_note("kernel-pinned range in auto: %s", early ? "left to the kernel" : "copied");

	if (getuid() == 0) {
		st = t_run(argv[0], "explicit", 1, NULL, "T_AS_NOBODY=1 SAFEFORK_DEBUG=1", err, sizeof(err));
		if (st != 126) {
			T_CHECK(st == T_COHERENT, "as nobody: %d", st);
			T_CHECK(strstr(err, "(probe: io_uring-pinned page, pagemap exclusive bit)") &&
					strstr(err, early ? "at fork: yes" : "at fork: NO"),
				"probe as nobody: %s", err);
			t_note("probe as nobody: exclusive bit, agrees");
		}
	}

	/* io_uring disabled: the probe cannot run and says so; the version decides */
	FILE *f = fopen(DISABLED, "r");
	int old = -1;
	if (f) {
		if (fscanf(f, "%d", &old) != 1)
			old = -1;
		fclose(f);
	}
	if (old < 0 || getuid() != 0 || write_file(DISABLED, "2\n") != 0)
		t_skip("probe paths as root checked; io_uring cannot be disabled here (%s)", DISABLED);
	st = t_run(argv[0], "explicit", 1, NULL, "SAFEFORK_DEBUG=1", err, sizeof(err));
	char oldv[8];
	snprintf(oldv, sizeof(oldv), "%d\n", old);
	write_file(DISABLED, oldv);
	T_CHECK(st == T_COHERENT, "io_uring disabled: explicit range not protected (%d)", st);
	T_CHECK(strstr(err, "kernel version (probe could not run)") && strstr(err, "io_uring disabled"),
		"fallback not reported: %s", err);
	t_pass("auto probes the kernel, copies explicit ranges, trusts the kernel for its pins where it copes");
}
