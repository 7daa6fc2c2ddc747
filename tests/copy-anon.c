/* copy-anon: a page-aligned anonymous buffer in flight to the device survives fork. */
#include <string.h>
#include "harness.h"

int main(int argc, char **argv)
{
	if (argc > 1) {
		size_t len = 16 * 4096;
		struct t_case c = { .reg = t_map(len), .reg_len = len, .register_it = 1 };
		return t_case_run(&c);
	}
	return t_protect_and_control(argv[0], "anon-64k");
}
