/*
 * unregister: nested and overlapping registrations keep a range protected
 * until the last one covering it is withdrawn; after that the library no
 * longer protects it and the corruption shows again, library loaded or not.
 */
#include <errno.h>
#include <string.h>
#include "harness.h"

int main(int argc, char **argv)
{
	size_t ps = 4096, len = 32 * ps;

	if (argc > 1) {
		char *buf = t_map(len);
		struct t_case c = { .reg = buf + 4 * ps, .reg_len = 8 * ps, .register_it = 1 };
		if (!strcmp(argv[1], "nested")) {
			/* outer, an overlapping one, and the same range twice */
			T_CHECK(t_register(buf, len, 0) == 0, "register outer");
			T_CHECK(t_register(buf + 2 * ps, 12 * ps, 0) == 0, "register overlap");
			T_CHECK(t_register(buf + 4 * ps, 8 * ps, 0) == 0, "register inner");
			T_CHECK(t_unregister(buf, len) == 0, "unregister outer");
			T_CHECK(t_unregister(buf + 4 * ps, 8 * ps) == 0, "unregister inner");
			/* still covered by the overlapping one and by the case's own registration */
			return t_case_run(&c);
		}
		/* "withdrawn": registered and withdrawn before the fork: no protection left */
		T_CHECK(t_register(buf + 4 * ps, 8 * ps, 0) == 0, "register");
		T_CHECK(t_register(buf + 4 * ps, 8 * ps, 0) == 0, "register twice");
		T_CHECK(t_unregister(buf + 4 * ps, 8 * ps) == 0, "unregister once");
		T_CHECK(t_unregister(buf + 4 * ps, 8 * ps) == 0, "unregister twice");
		if (t_lib_loaded()) {
			T_CHECK(t_unregister(buf + 4 * ps, 8 * ps) == -1 && errno == ENOENT, "third unregister must be ENOENT");
		}
		c.register_it = 0;
		return t_case_run(&c);
	}
	int bad = t_protect_and_control(argv[0], "nested");
	bad |= t_expect(argv[0], "withdrawn", 1, "copy", T_STALE);
	bad |= t_expect(argv[0], "withdrawn", 0, NULL, T_STALE);
	return bad ? T_FAIL : T_PASS;
}
