/*
 * vm-uring - fork() against an io_uring fixed buffer in a VM.
 *
 *   vm-uring SCENARIO      uring-hugetlb or uring-normal: one RESULT line
 *   vm-uring --list
 *
 * A 2 MiB buffer registered with io_uring_register_buffers (the kernel pins
 * it), fork, the parent rewrites it, IORING_OP_WRITE_FIXED writes it into a
 * memfd: does the file get the parent's new data (COHERENT) or the pre-fork
 * data (STALE)?
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <sys/mman.h>

#include "vmtest.h"

static int write_fixed(struct io_uring *ring, int fd, void *buf)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int r;

	io_uring_prep_write_fixed(sqe, fd, buf, BUF_LEN, 0, 0);
	if ((r = io_uring_submit(ring)) != 1 || (r = io_uring_wait_cqe(ring, &cqe)) != 0) {
		errno = -r;
		vt_error("io_uring submit/wait");
	}
	r = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return r;
}

/* Pages of the file that are not `byte` after a WRITE_FIXED of the buffer. */
static int file_stale(struct io_uring *ring, int fd, void *buf, unsigned char *check, int byte)
{
	int r = write_fixed(ring, fd, buf);
	if (r != (int)BUF_LEN) {
		errno = r < 0 ? -r : 0;
		vt_error("IORING_OP_WRITE_FIXED returned %d", r);
	}
	if (pread(fd, check, BUF_LEN, 0) != (ssize_t)BUF_LEN)
		vt_error("pread");
	return vt_bad_pages(check, BUF_LEN, byte);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: vm-uring SCENARIO | --list\n");
		return 2;
	}
	if (!strcmp(argv[1], "--list")) {
		printf("uring-normal\nuring-hugetlb\n");
		return 0;
	}
	scenario = argv[1];
	if (strncmp(scenario, "uring-", 6))
		vt_error("unknown scenario");

	struct io_uring ring;
	int r = io_uring_queue_init(4, &ring, 0);
	if (r < 0) {
		errno = -r;
		if (r == -ENOSYS || r == -EPERM)
			vt_skip("io_uring not available: %s", strerror(-r));
		vt_error("io_uring_queue_init");
	}
	int fd = memfd_create("vm-uring", MFD_CLOEXEC);
	unsigned char *check = malloc(BUF_LEN);
	if (fd < 0 || !check)
		vt_error("memfd_create/malloc");
	unsigned char *buf = vt_buffer(scenario + 6);
	struct iovec iov = { buf, BUF_LEN };
	if ((r = io_uring_register_buffers(&ring, &iov, 1)) != 0) {
		errno = -r;
		vt_error("io_uring_register_buffers");
	}
	if (file_stale(&ring, fd, buf, check, PAT_A))
		vt_error("WRITE_FIXED before any fork does not write the buffer");

	struct vt_child c;
	vt_fork(&c, buf);
	memset(buf, PAT_B, BUF_LEN); /* the parent's next batch */
	int stale = file_stale(&ring, fd, buf, check, PAT_B);
	vt_child_finish(&c);
	int leak = vt_bad_pages(buf, BUF_LEN, PAT_D) < PAGES;
	vt_report(stale, 0, leak, c.status, NULL);
	io_uring_queue_exit(&ring);
	return 0;
}
