/*
 * uring-fork: after a fork in copy mode, an IORING_OP_WRITE_FIXED from a
 * registered buffer the parent rewrote carries the parent's new data, and
 * the child sees the fork-time data (then its own writes).  This kernel
 * already protects FOLL_PIN pins itself, so the same holds with
 * SAFEFORK_MODE=off and without the library: a consistency check that the
 * library's copy agrees with the kernel (the proof on a kernel that lacks
 * early COW belongs to the QEMU runs); the library's counters show that it
 * did protect the buffer in copy mode and not in the controls.
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>
#include "pintest.h"

#define LEN (8 * 4096ul)

static void handshake_write(int fd)
{
	char c = 1;
	T_CHECK(write(fd, &c, 1) == 1, "pipe write");
}

static int handshake_read(int fd)
{
	char c;
	return read(fd, &c, 1) == 1;
}

static int role(void)
{
	struct io_uring ring;
	int r;
	p_ring_init(&ring);
	char *buf = t_map(LEN);
	struct iovec iov = { buf, LEN };
	t_fill(buf, LEN, 1);
	r = io_uring_register_buffers(&ring, &iov, 1);
	if (r == -ENOMEM)
		t_skip("cannot pin memory (RLIMIT_MEMLOCK)");
	T_CHECK(r == 0, "io_uring_register_buffers: %s", strerror(-r));
	int out = memfd_create("uring-fork", MFD_CLOEXEC);
	T_CHECK(out >= 0, "memfd_create");

	int to_child[2], to_parent[2];
	T_CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0, "pipe");
	struct safefork_stats before = p_stats();
	pid_t pid = fork();
	if (pid == 0) {
		int ok = t_gen_of(buf, LEN, NULL) == 1; /* the fork-time data */
		t_fill(buf, LEN, 3);
		handshake_write(to_parent[1]);
		ok &= handshake_read(to_child[0]);
		ok &= t_gen_of(buf, LEN, NULL) == 3; /* its own writes, not the parent's */
		_exit(ok ? 0 : 2);
	}
	T_CHECK(pid > 0, "fork");
	T_CHECK(handshake_read(to_parent[0]), "child");
	t_fill(buf, LEN, 2);

	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	io_uring_prep_write_fixed(sqe, out, buf, LEN, 0, 0);
	T_CHECK(io_uring_submit(&ring) == 1, "submit");
	struct io_uring_cqe *cqe;
	T_CHECK(io_uring_wait_cqe(&ring, &cqe) == 0, "wait");
	T_CHECK(cqe->res == (int)LEN, "IORING_OP_WRITE_FIXED: %d", cqe->res);
	io_uring_cqe_seen(&ring, cqe);
	handshake_write(to_child[1]);
	T_CHECK(t_wait(pid) == 0, "the child did not see the fork-time data, then its own");

	char *seen = t_map(LEN);
	T_CHECK(pread(out, seen, LEN, 0) == (ssize_t)LEN, "pread");
	size_t bad = 0;
	long gen = t_gen_of(seen, LEN, &bad);
	T_CHECK(gen == 2, "IORING_OP_WRITE_FIXED after the fork wrote generation %ld (first bad byte %zu), not the "
		"parent's 2", gen, bad);
	struct safefork_stats after = p_stats();
	T_CHECK((after.forks_protected - before.forks_protected == 1) == p_copying() &&
			(after.bytes_copied - before.bytes_copied >= LEN) == p_copying(),
		"the library %s the registered buffer", p_copying() ? "did not protect" : "protected");
	io_uring_queue_exit(&ring);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return role();
	p_run_with_controls(argv[0], "write-fixed", "copy", NULL);
	t_pass("WRITE_FIXED after a fork in copy mode carries the parent's data; the child keeps the fork-time "
	       "data (consistent with the kernel's own early COW)");
}
