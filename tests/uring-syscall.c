/*
 * uring-syscall: io_uring_register(2) made through syscall(), as old
 * liburing and programs without liburing do, on a real ring: BUFFERS,
 * BUFFERS2 (with tags, and sparse), BUFFERS_UPDATE, UNREGISTER_BUFFERS,
 * PBUF_RING and UNREGISTER_PBUF_RING are decoded into the table (source
 * uring); close() of the ring's last descriptor takes its ranges out, a
 * dup()ed descriptor keeps them until it is closed too, and a vfork() child's
 * close() (its own descriptor table) none of them.  Bad pointers and
 * descriptors fail in the kernel as usual (errno intact), record nothing
 * and print nothing.  Controls: SAFEFORK_MODE=off and no library.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include "pintest.h"

#define SRC SAFEFORK_SOURCE_URING
#define PG 4096

static int setup(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	int fd = (int)syscall(__NR_io_uring_setup, 8, &p);
	if (fd < 0 && (errno == ENOSYS || errno == EPERM))
		t_skip("io_uring is not available here: %s", strerror(errno));
	T_CHECK(fd >= 0, "io_uring_setup: %s", strerror(errno));
	return fd;
}

static long reg(int fd, unsigned op, const void *arg, unsigned nr)
{
	return syscall(__NR_io_uring_register, fd, op, arg, nr);
}

static int role(void)
{
	char *b = t_map(32 * PG);
	struct iovec iov[3] = { { b, PG }, { b + 2 * PG, 2 * PG }, { b + 8 * PG, 3 * PG } };
	uint64_t tags[4] = { 1, 2, 3, 4 };
	int fd = setup();

	long r = reg(fd, IORING_REGISTER_BUFFERS, iov, 2);
	if (r < 0 && errno == ENOMEM)
		t_skip("cannot pin memory (RLIMIT_MEMLOCK)");
	T_CHECK(r == 0, "IORING_REGISTER_BUFFERS: %s", strerror(errno));
	P_EXPECT(SRC, 2, 3 * PG, "IORING_REGISTER_BUFFERS");
	T_CHECK(reg(fd, IORING_UNREGISTER_BUFFERS, NULL, 0) == 0, "IORING_UNREGISTER_BUFFERS");
	P_EXPECT(SRC, 0, 0, "IORING_UNREGISTER_BUFFERS");

	struct io_uring_rsrc_register rr;
	memset(&rr, 0, sizeof(rr));
	rr.nr = 3;
	rr.data = (uintptr_t)iov;
	rr.tags = (uintptr_t)tags;
	T_CHECK(reg(fd, IORING_REGISTER_BUFFERS2, &rr, sizeof(rr)) == 0, "IORING_REGISTER_BUFFERS2: %s",
		strerror(errno));
	P_EXPECT(SRC, 3, 6 * PG, "IORING_REGISTER_BUFFERS2");

	/* slot 0 replaced by a bigger buffer */
	struct iovec one = { b + 16 * PG, 4 * PG };
	struct io_uring_rsrc_update2 up;
	memset(&up, 0, sizeof(up));
	up.offset = 0;
	up.data = (uintptr_t)&one;
	up.tags = (uintptr_t)tags;
	up.nr = 1;
	T_CHECK(reg(fd, IORING_REGISTER_BUFFERS_UPDATE, &up, sizeof(up)) == 1, "IORING_REGISTER_BUFFERS_UPDATE: %s",
		strerror(errno));
	P_EXPECT(SRC, 3, 9 * PG, "IORING_REGISTER_BUFFERS_UPDATE");
	T_CHECK(reg(fd, IORING_UNREGISTER_BUFFERS, NULL, 0) == 0, "unregister");
	P_EXPECT(SRC, 0, 0, "IORING_UNREGISTER_BUFFERS after an update");

	/* a sparse table filled by updates */
	memset(&rr, 0, sizeof(rr));
	rr.nr = 4;
	rr.flags = IORING_RSRC_REGISTER_SPARSE;
	if (reg(fd, IORING_REGISTER_BUFFERS2, &rr, sizeof(rr)) == 0) {
		P_EXPECT(SRC, 0, 0, "a sparse table");
		up.offset = 2;
		up.data = (uintptr_t)iov;
		up.nr = 2;
		up.tags = (uintptr_t)tags;
		T_CHECK(reg(fd, IORING_REGISTER_BUFFERS_UPDATE, &up, sizeof(up)) == 2, "update a sparse table: %s",
			strerror(errno));
		P_EXPECT(SRC, 2, 3 * PG, "a sparse table, two slots filled");
		T_CHECK(reg(fd, IORING_UNREGISTER_BUFFERS, NULL, 0) == 0, "unregister");
		P_EXPECT(SRC, 0, 0, "unregistered");
	}

	/* a provided-buffer ring in our memory */
	struct io_uring_buf_reg br;
	memset(&br, 0, sizeof(br));
	br.ring_addr = (uintptr_t)(b + 24 * PG);
	br.ring_entries = 16;
	br.bgid = 7;
	r = reg(fd, IORING_REGISTER_PBUF_RING, &br, 1);
	if (r == 0) {
		P_EXPECT(SRC, 1, 16 * 16, "IORING_REGISTER_PBUF_RING");
		struct io_uring_buf_reg gone;
		memset(&gone, 0, sizeof(gone));
		gone.bgid = 7;
		T_CHECK(reg(fd, IORING_UNREGISTER_PBUF_RING, &gone, 1) == 0, "IORING_UNREGISTER_PBUF_RING");
		P_EXPECT(SRC, 0, 0, "IORING_UNREGISTER_PBUF_RING");
	} else {
		t_note("no provided-buffer rings in this kernel: %s", strerror(errno));
	}

	/* bad input: the kernel refuses, we record nothing, errno is the kernel's */
	errno = 0;
	T_CHECK(reg(fd, IORING_REGISTER_BUFFERS, (void *)8, 1) == -1 && errno == EFAULT, "bad iovec: errno %d", errno);
	errno = 0;
	T_CHECK(reg(fd, IORING_REGISTER_BUFFERS2, (void *)8, sizeof(rr)) == -1 && errno == EFAULT, "bad BUFFERS2: %d",
		errno);
	errno = 0;
	T_CHECK(reg(1000, IORING_REGISTER_BUFFERS, iov, 1) == -1 && errno == EBADF, "bad descriptor: errno %d", errno);
	errno = 0;
	T_CHECK(reg(fd, IORING_REGISTER_BUFFERS_UPDATE, &up, 3) == -1 && errno == EINVAL, "bad size: errno %d", errno);
	P_EXPECT(SRC, 0, 0, "refused registrations");

	/* the ring's end: close() of its descriptor, buffers still registered */
	T_CHECK(reg(fd, IORING_REGISTER_BUFFERS, iov, 3) == 0, "register again");
	P_EXPECT(SRC, 3, 6 * PG, "registered again");
	/* a vfork() child shares our memory, not our descriptors: its close() ends nothing of ours */
	pid_t v = vfork();
	if (v == 0) {
		close(fd);
		_exit(0);
	}
	T_CHECK(v > 0 && t_wait(v) == 0, "vfork");
	P_EXPECT(SRC, 3, 6 * PG, "a vfork child's close() of the ring");
	T_CHECK(close(fd) == 0, "close");
	P_EXPECT(SRC, 0, 0, "close() of the ring");

	/* a dup()ed descriptor keeps the ring (and its pins) alive */
	fd = setup();
	T_CHECK(reg(fd, IORING_REGISTER_BUFFERS, iov, 1) == 0, "register");
	int d = dup(fd);
	T_CHECK(d >= 0 && close(fd) == 0, "dup, close");
	P_EXPECT(SRC, 1, PG, "close() of one of two descriptors");
	T_CHECK(reg(d, IORING_UNREGISTER_BUFFERS, NULL, 0) == 0 && reg(d, IORING_REGISTER_BUFFERS, iov + 1, 1) == 0,
		"re-register through the dup");
	P_EXPECT(SRC, 1, 2 * PG, "registered through the dup");
	T_CHECK(close(d) == 0, "close the dup");
	P_EXPECT(SRC, 0, 0, "close() of the last descriptor");
	errno = 0;
	T_CHECK(close(d) == -1 && errno == EBADF, "close twice: errno %d", errno);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return role();
	p_run_with_controls(argv[0], "syscall", "copy", NULL);
	t_pass("syscall(__NR_io_uring_register): BUFFERS, BUFFERS2, UPDATE, UNREGISTER, PBUF_RING decoded; "
	       "close() of the last descriptor ends the ring's ranges; bad input refused quietly");
}
