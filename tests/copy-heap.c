/*
 * copy-heap: a 10 000-byte malloc buffer shares its pages with malloc's
 * metadata and with neighbours.  The child must see the buffer as of the
 * fork and go on using the heap normally (malloc/free around it, the
 * neighbours intact), which MADV_DONTFORK-style protection breaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "harness.h"

static char *before, *after;

static int child_uses_heap(void *arg)
{
	(void)arg;
	for (int i = 0; i < 64; i++)
		if (before[i] != 'b' || after[i] != 'a')
			return 1;
	void *ptrs[256];
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 256; i++) {
			ptrs[i] = malloc((size_t)(16 + i * 37));
			if (!ptrs[i])
				return 1;
			memset(ptrs[i], i, (size_t)(16 + i * 37));
		}
		for (int i = 0; i < 256; i++)
			free(ptrs[i]);
	}
	free(before);
	free(after);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		before = malloc(64);
		char *buf = malloc(10000);
		after = malloc(64);
		if (!before || !buf || !after)
			t_fail("malloc");
		memset(before, 'b', 64);
		memset(after, 'a', 64);
		T_CHECK(((uintptr_t)buf & 4095) != 0 || ((uintptr_t)(buf + 10000) & 4095) != 0,
			"expected a buffer that shares pages with other heap data");
		struct t_case c = { .reg = buf, .reg_len = 10000, .register_it = 1, .child_check = child_uses_heap };
		return t_case_run(&c);
	}
	return t_protect_and_control(argv[0], "heap-10000");
}
