/*
 * copy-hugetlb: a range inside a hugetlbfs page (MAP_HUGETLB).  The
 * protection must round out to the huge page; the child gets its own huge
 * page (or normal pages when none is free) with the fork-time content.
 * Needs free huge pages: as root the test reserves a few itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "harness.h"

#define HUGE (2ul << 20)
#define NR_PATH "/proc/sys/vm/nr_hugepages"

static long read_nr(void)
{
	FILE *f = fopen(NR_PATH, "r");
	long n = -1;
	if (f) {
		if (fscanf(f, "%ld", &n) != 1)
			n = -1;
		fclose(f);
	}
	return n;
}

static int write_nr(long n)
{
	FILE *f = fopen(NR_PATH, "w");
	if (!f)
		return -1;
	fprintf(f, "%ld\n", n);
	return fclose(f);
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		char *buf = mmap(NULL, 2 * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
		if (buf == MAP_FAILED)
			t_skip("MAP_HUGETLB failed: %s", strerror(errno));
		memset(buf, 0, 2 * HUGE);
		/* An unaligned range in the middle of the first huge page, and one across both. */
		struct t_case c = { .reg = buf + 100000, .reg_len = 300000, .register_it = 1 };
		if (!strcmp(argv[1], "across")) {
			c.reg = buf + HUGE - 8192;
			c.reg_len = 16384;
		}
		return t_case_run(&c);
	}
	long old = read_nr();
	if (old < 0)
		t_skip("cannot read %s", NR_PATH);
	if (old < 8 && (getuid() != 0 || write_nr(old + 8) != 0 || read_nr() < old + 8)) {
		write_nr(old);
		t_skip("needs free huge pages: set vm.nr_hugepages (root) — have %ld", old);
	}
	int bad = t_protect_and_control(argv[0], "hugetlb-inside");
	bad |= t_protect_and_control(argv[0], "across");
	/* wipe cannot apply to hugetlb: the library copies instead and says so, once */
	char err[2048];
	int st = t_run(argv[0], "hugetlb-inside", 1, "wipe", NULL, err, sizeof(err));
	/* one line, then the fallback's call-site report (tests/reports) */
	const char *nl = strchr(err, '\n');
	if (st != T_COHERENT || strncmp(err, "safefork: MADV_WIPEONFORK refused", 33) || !nl ||
	    strncmp(nl + 1, "safefork: degraded fork in pid", 30) || strstr(nl + 1, "MADV_WIPEONFORK")) {
		printf("FAIL: wipe on hugetlb: status %d, stderr: %s\n", st, err);
		bad = 1;
	}
	if (old < 8)
		write_nr(old);
	return bad;
}
