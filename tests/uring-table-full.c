/*
 * uring-table-full: when the range table cannot take a registration
 * (SAFEFORK_MAX_RANGES reached), the registration itself still succeeds,
 * the library says so in one line (once, however many follow), counts a
 * fallback, and takes out what it did record when the buffers go.
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include "pintest.h"

static int role(void)
{
	struct io_uring ring;
	int r;
	p_ring_init(&ring);
	char *b = t_map(8 * 4096);
	struct iovec iov[4] = { { b, 4096 }, { b + 4096, 4096 }, { b + 8192, 4096 }, { b + 12288, 4096 } };

	r = io_uring_register_buffers(&ring, iov, 4);
	if (r == -ENOMEM)
		t_skip("cannot pin memory (RLIMIT_MEMLOCK)");
	T_CHECK(r == 0, "io_uring_register_buffers: %s", strerror(-r));
	struct safefork_stats st = p_stats();
	T_CHECK(st.ranges[SAFEFORK_SOURCE_URING] == 2 && st.fallbacks >= 1, "table of 2: %llu ranges, %llu fallbacks",
		st.ranges[SAFEFORK_SOURCE_URING], st.fallbacks);
	T_CHECK(io_uring_unregister_buffers(&ring) == 0, "unregister");
	T_CHECK(p_stats().ranges[SAFEFORK_SOURCE_URING] == 0, "ranges left after unregistration");
	T_CHECK(io_uring_register_buffers(&ring, iov, 4) == 0, "register again");
	io_uring_queue_exit(&ring);
	T_CHECK(p_stats().ranges[SAFEFORK_SOURCE_URING] == 0, "ranges left after the ring's end");
	return 0;
}

int main(int argc, char **argv)
{
	char err[4096];

	if (argc > 1)
		return role();
	int st = t_run(argv[0], "full", 1, "copy", "SAFEFORK_MAX_RANGES=2", err, sizeof(err));
	if (st == T_SKIP)
		return T_SKIP;
	T_CHECK(st == 0, "role failed (%d)", st);
	T_CHECK(!strncmp(err, "safefork: ", 10) && strstr(err, "range table is full") &&
			strchr(err, '\n') == err + strlen(err) - 1,
		"expected one line about the full table, got \"%s\"", err);
	t_pass("a full table: the registration goes on, one line, a fallback counted, nothing left behind");
}
