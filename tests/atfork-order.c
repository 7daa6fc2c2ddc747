/*
 * atfork-order: a pthread_atfork child handler registered by a library
 * loaded before the shim (its constructor runs first) sees the registered
 * buffer's fork-time content, not the zeros of a not-yet-restored page.
 */
#include <stdint.h>
#include <stdio.h>
#include "harness.h"

extern const volatile uint64_t *atforkuser_buf;
extern volatile uint64_t atforkuser_seen;

static int child_check(void *arg)
{
	(void)arg;
	if (atforkuser_seen != 1) {
		printf("child: the library's atfork handler saw generation %lu, expected 1\n",
		       (unsigned long)atforkuser_seen);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		size_t len = 4 * 4096;
		uint64_t *buf = t_map(len);
		atforkuser_buf = buf;
		struct t_case c = { .reg = buf, .reg_len = len, .register_it = 1, .child_check = child_check };
		return t_case_run(&c);
	}
	return t_protect_and_control(argv[0], "atfork-handler-reads");
}
