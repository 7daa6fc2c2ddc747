/*
 * nothing-registered: with the library loaded and nothing registered, a fork
 * is an ordinary fork: the child shares the parent's physical pages
 * copy-on-write (same PFNs), has the same mappings, no staging, and the
 * parent's pages become shared (pagemap bit 56 clears).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"

int main(int argc, char **argv)
{
	if (argc > 1) {
		size_t len = 8 * 4096;
		char *buf = t_map(len);
		memset(buf, 7, len);
		int pfns = t_can_see_pfns();
		uint64_t pfn = t_pfn(buf);
		int vmas = t_vma_count();
		T_CHECK(t_page_exclusive(buf), "a freshly written page should be exclusive");
		pid_t pid = fork();
		if (pid == 0) {
			if (pfns && t_pfn(buf) != pfn) {
				printf("child: PFN differs: the page was copied\n");
				_exit(2);
			}
			if (t_maps_contains("[anon:safefork")) {
				printf("child: a safefork mapping is present\n");
				_exit(3);
			}
			if (t_vma_count() != vmas) {
				printf("child: %d mappings, parent had %d\n", t_vma_count(), vmas);
				_exit(4);
			}
			_exit(buf[100] == 7 ? 0 : 5);
		}
		int st = t_wait(pid);
		T_CHECK(st == 0, "child check failed (%d)", st);
		T_CHECK(t_vma_count() == vmas, "parent mappings changed: %d -> %d", vmas, t_vma_count());
		return 0;
	}
	T_CHECK(t_run(argv[0], "plain", 1, NULL, NULL, NULL, 0) == 0, "with the library loaded");
	T_CHECK(t_run(argv[0], "plain", 0, NULL, NULL, NULL, 0) == 0, "without the library");
	t_pass("an unregistered fork is an ordinary fork");
}
