/*
 * api: the public API, linked directly (as a runtime would use it):
 * argument checking, errno values, nesting, the table limit, versions, modes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#include "safefork.h"

#define EXPECT_ERR(call, err)                                                                   \
	do {                                                                                    \
		errno = 0;                                                                      \
		T_CHECK((call) == -1 && errno == (err), "%s: expected %s, got errno %d", #call, \
			#err, errno);                                                           \
	} while (0)

static int limit_role(void)
{
	/* SAFEFORK_MAX_RANGES=100: the 101st distinct range is refused with ENOMEM. */
	static char buf[200 * 64];
	for (int i = 0; i < 100; i++)
		T_CHECK(safefork_register(buf + i * 64, 64, 0) == 0, "register %d", i);
	EXPECT_ERR(safefork_register(buf + 100 * 64, 64, 0), ENOMEM);
	/* the same range again only counts up */
	T_CHECK(safefork_register(buf, 64, 0) == 0, "re-register");
	T_CHECK(safefork_unregister(buf + 99 * 64, 64) == 0, "unregister");
	T_CHECK(safefork_register(buf + 100 * 64, 64, 0) == 0, "room again after unregister");
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[3 * 4096];

	if (argc > 1)
		return limit_role();

	EXPECT_ERR(safefork_register(NULL, 10, 0), EINVAL);
	EXPECT_ERR(safefork_register(buf, 0, 0), EINVAL);
	EXPECT_ERR(safefork_register((void *)(UINTPTR_MAX - 10), 100, 0), EINVAL);
	EXPECT_ERR(safefork_register(buf, 10, 0x80000000u), EINVAL);
	EXPECT_ERR(safefork_register(buf, 10, SAFEFORK_COPY | SAFEFORK_WIPE), EINVAL);
	EXPECT_ERR(safefork_unregister(buf, 10), ENOENT);
	EXPECT_ERR(safefork_unregister(NULL, 10), EINVAL);

	T_CHECK(safefork_register(buf + 1, 5000, 0) == 0, "odd alignment");
	T_CHECK(safefork_register(buf + 1, 5000, 0) == 0, "same range twice");
	T_CHECK(safefork_register(buf, sizeof(buf), SAFEFORK_COPY | SAFEFORK_KERNEL_PIN) == 0, "overlapping, flags");
	EXPECT_ERR(safefork_unregister(buf + 1, 4999), ENOENT); /* not a registration */
	T_CHECK(safefork_unregister(buf + 1, 5000) == 0, "first");
	T_CHECK(safefork_unregister(buf + 1, 5000) == 0, "second");
	EXPECT_ERR(safefork_unregister(buf + 1, 5000), ENOENT);
	T_CHECK(safefork_unregister(buf, sizeof(buf)) == 0, "outer");

	char v[32];
	snprintf(v, sizeof(v), "%d.%d.%d", SAFEFORK_VERSION_MAJOR, SAFEFORK_VERSION_MINOR, SAFEFORK_VERSION_PATCH);
	T_CHECK(!strcmp(safefork_version(), v), "version %s vs header %s", safefork_version(), v);

	enum safefork_mode m0 = safefork_get_mode();
	T_CHECK(safefork_set_mode(SAFEFORK_MODE_OFF) == 0 && safefork_get_mode() == SAFEFORK_MODE_OFF, "set off");
	EXPECT_ERR(safefork_set_mode((enum safefork_mode)42), EINVAL);
	T_CHECK(safefork_set_mode(m0) == 0, "restore mode");

	/* safefork_fork: a fork with the registered ranges protected. */
	T_CHECK(safefork_register(buf, sizeof(buf), 0) == 0, "register for fork");
	memset(buf, 'p', sizeof(buf));
	pid_t pid = safefork_fork();
	if (pid == 0)
		_exit(buf[0] == 'p' && buf[sizeof(buf) - 1] == 'p' ? 0 : 1);
	T_CHECK(pid > 0 && t_wait(pid) == 0, "safefork_fork child");

	T_CHECK(t_run(argv[0], "limit", 0, NULL, "SAFEFORK_MAX_RANGES=100", NULL, 0) == 0, "table limit");
	t_pass("API contract holds");
}
