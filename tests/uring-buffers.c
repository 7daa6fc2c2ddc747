/*
 * uring-buffers: registered buffers through liburing on a real ring.  Each
 * buffer slot is one range (source uring) from io_uring_register_buffers,
 * _tags and io_uring_register() (liburing's raw call); an update through
 * io_uring_register_buffers_update_tag replaces a slot's range (a NULL
 * iovec empties it); io_uring_unregister_buffers and io_uring_queue_exit
 * take them all out, also those registered through the ring's registered
 * index.  The buffers are protected at fork (copy).
 * Controls: with SAFEFORK_MODE=off and without the library the calls
 * behave the same and the table stays empty.
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include "pintest.h"

#define SRC SAFEFORK_SOURCE_URING
#define PG 4096

static int role(void)
{
	struct io_uring ring;
	char *b = t_map(32 * PG);
	struct iovec iov[3] = { { b, PG }, { b + 2 * PG, 2 * PG }, { b + 8 * PG + 100, 1000 } };
	__u64 tags[3] = { 1, 2, 3 };

	p_ring_init(&ring);
	int r = io_uring_register_buffers(&ring, iov, 2);
	if (r == -ENOMEM)
		t_skip("cannot pin memory (RLIMIT_MEMLOCK)");
	T_CHECK(r == 0, "io_uring_register_buffers: %s", strerror(-r));
	P_EXPECT(SRC, 2, 3 * PG, "io_uring_register_buffers@LIBURING_2.0");

	p_fork_protected_iff_copying("registered buffers");

	T_CHECK(io_uring_unregister_buffers(&ring) == 0, "io_uring_unregister_buffers");
	P_EXPECT(SRC, 0, 0, "io_uring_unregister_buffers@LIBURING_2.0");

	r = io_uring_register_buffers_tags(&ring, iov, tags, 3);
	T_CHECK(r == 0, "io_uring_register_buffers_tags: %s", strerror(-r));
	P_EXPECT(SRC, 3, 3 * PG + 1000, "io_uring_register_buffers_tags@LIBURING_2.1");

	/* slot 1 gets another buffer, slot 2 is emptied */
	struct iovec upd[2] = { { b + 16 * PG, 5 * PG }, { NULL, 0 } };
	__u64 utags[2] = { 0, 0 };
	r = io_uring_register_buffers_update_tag(&ring, 1, upd, utags, 2);
	T_CHECK(r == 2, "io_uring_register_buffers_update_tag: %d", r);
	P_EXPECT(SRC, 2, 6 * PG, "io_uring_register_buffers_update_tag@LIBURING_2.1");
	/* an update the kernel refuses (beyond the table) changes nothing */
	r = io_uring_register_buffers_update_tag(&ring, 7, upd, utags, 1);
	T_CHECK(r < 0, "an update beyond the table succeeded");
	P_EXPECT(SRC, 2, 6 * PG, "a refused update");
	T_CHECK(io_uring_unregister_buffers(&ring) == 0, "io_uring_unregister_buffers");
	P_EXPECT(SRC, 0, 0, "unregistered");

	/* liburing's raw io_uring_register(), decoded like the system call */
	r = io_uring_register(ring.ring_fd, IORING_REGISTER_BUFFERS, iov, 3);
	T_CHECK(r == 0, "io_uring_register: %s", strerror(-r));
	P_EXPECT(SRC, 3, 3 * PG + 1000, "io_uring_register@LIBURING_2.3");

	/* the ring ends with buffers still registered: the kernel unpins them */
	io_uring_queue_exit(&ring);
	P_EXPECT(SRC, 0, 0, "io_uring_queue_exit@LIBURING_2.0");

	/* through the ring's registered index (IORING_REGISTER_USE_REGISTERED_RING, 6.3+): gone with the ring too */
	p_ring_init(&ring);
	if (io_uring_register_ring_fd(&ring) == 1) {
		r = io_uring_register((unsigned)ring.enter_ring_fd, IORING_REGISTER_BUFFERS | (1u << 31), iov, 2);
		if (r == 0) {
			P_EXPECT(SRC, 2, 3 * PG, "registered through the registered-ring index");
			io_uring_queue_exit(&ring);
			P_EXPECT(SRC, 0, 0, "io_uring_queue_exit of a ring registered by index");
		} else {
			t_note("no IORING_REGISTER_USE_REGISTERED_RING in this kernel: %s", strerror(-r));
			io_uring_queue_exit(&ring);
		}
	} else {
		io_uring_queue_exit(&ring);
	}

	/* the same buffer in two slots: two ranges, which leave together */
	p_ring_init(&ring);
	struct iovec twice[2] = { { b, PG }, { b, PG } };
	T_CHECK(io_uring_register_buffers(&ring, twice, 2) == 0, "register twice");
	P_EXPECT(SRC, 2, 2 * PG, "one buffer in two slots");
	io_uring_queue_exit(&ring);
	P_EXPECT(SRC, 0, 0, "io_uring_queue_exit");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return role();
	p_run_with_controls(argv[0], "buffers", "copy", NULL);
	t_pass("liburing registered buffers: one range per slot, updated, unregistered, gone with the ring");
}
