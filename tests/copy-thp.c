/*
 * copy-thp: a 2 MiB range backed by a transparent huge page.  The parent
 * keeps its huge page (same PFNs, AnonHugePages unchanged) and the device
 * stays coherent.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include "harness.h"

#define HUGE (2ul << 20)

int main(int argc, char **argv)
{
	if (argc > 1) {
		char *raw = t_map(3 * HUGE);
		char *buf = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
		if (madvise(buf, HUGE, MADV_HUGEPAGE) != 0)
			t_skip("madvise(MADV_HUGEPAGE) failed: no THP in this kernel");
		memset(buf, 1, HUGE);
		long before = t_anon_huge_kb(buf);
		if (before < 2048)
			t_skip("no transparent huge page backs the buffer (AnonHugePages %ld kB; THP disabled?)", before);
		struct t_case c = { .reg = buf, .reg_len = HUGE, .register_it = 1 };
		int v = t_case_run(&c);
		long after = t_anon_huge_kb(buf);
		if (v == T_COHERENT)
			T_CHECK(after == before, "AnonHugePages changed across the fork: %ld kB -> %ld kB", before, after);
		t_note("AnonHugePages %ld kB -> %ld kB", before, after);
		return v;
	}
	return t_protect_and_control(argv[0], "thp-2m");
}
