/*
 * uring-bufring: provided-buffer rings through liburing on a real ring.
 * Ring memory the program supplies is pinned: io_uring_register_buf_ring
 * puts it in the table (source uring, one range per buffer group) and
 * io_uring_unregister_buf_ring / io_uring_queue_exit take it out.  A ring
 * the kernel allocates itself (IOU_PBUF_RING_MMAP) pins nothing of ours and
 * is not recorded.  Controls: SAFEFORK_MODE=off and no library.
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include "pintest.h"

#define SRC SAFEFORK_SOURCE_URING
#define PBUF_RING_MMAP 1 /* IOU_PBUF_RING_MMAP (6.4), newer than some headers */

static int reg(struct io_uring *ring, void *mem, unsigned entries, unsigned bgid, unsigned flags)
{
	/* struct io_uring_buf_reg; its flags field is "pad" in older headers */
	struct {
		__u64 ring_addr;
		__u32 ring_entries;
		__u16 bgid, flags;
		__u64 resv[3];
	} r;
	_Static_assert(sizeof(r) == sizeof(struct io_uring_buf_reg), "struct io_uring_buf_reg");
	memset(&r, 0, sizeof(r));
	r.ring_addr = (unsigned long)mem;
	r.ring_entries = entries;
	r.bgid = (__u16)bgid;
	r.flags = (__u16)flags;
	return io_uring_register_buf_ring(ring, (struct io_uring_buf_reg *)(void *)&r, 0);
}

static int role(void)
{
	struct io_uring ring;
	int r;
	p_ring_init(&ring);

	char *m1 = t_map(4096), *m2 = t_map(4096);
	r = reg(&ring, m1, 8, 1, 0);
	if (r == -EINVAL || r == -ENOSYS)
		t_skip("no provided-buffer rings in this kernel (5.19+)");
	T_CHECK(r == 0, "io_uring_register_buf_ring: %s", strerror(-r));
	P_EXPECT(SRC, 1, 8 * 16, "io_uring_register_buf_ring@LIBURING_2.2");
	T_CHECK(reg(&ring, m2, 64, 2, 0) == 0, "second group");
	P_EXPECT(SRC, 2, 72 * 16, "two buffer groups");
	T_CHECK(reg(&ring, m2, 64, 2, 0) < 0, "the same group twice was accepted");
	P_EXPECT(SRC, 2, 72 * 16, "a refused registration");

	T_CHECK(io_uring_unregister_buf_ring(&ring, 1) == 0, "io_uring_unregister_buf_ring");
	P_EXPECT(SRC, 1, 64 * 16, "io_uring_unregister_buf_ring@LIBURING_2.2");
	T_CHECK(io_uring_unregister_buf_ring(&ring, 1) < 0, "unregistering twice was accepted");
	P_EXPECT(SRC, 1, 64 * 16, "a refused unregistration");

	r = reg(&ring, NULL, 8, 3, PBUF_RING_MMAP);
	if (r == 0) {
		P_EXPECT(SRC, 1, 64 * 16, "a kernel-allocated buffer ring (IOU_PBUF_RING_MMAP)");
		T_CHECK(io_uring_unregister_buf_ring(&ring, 3) == 0, "unregister the kernel's ring");
	} else {
		t_note("no IOU_PBUF_RING_MMAP in this kernel (6.4+): %s", strerror(-r));
	}

	io_uring_queue_exit(&ring);
	P_EXPECT(SRC, 0, 0, "io_uring_queue_exit with a buffer ring registered");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return role();
	p_run_with_controls(argv[0], "bufring", "copy", NULL);
	t_pass("buffer rings in program memory in and out of the table; kernel-allocated ones not recorded");
}
