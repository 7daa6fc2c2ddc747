/*
 * wrap_uring.c - io_uring registrations that pin the program's memory.
 *
 * The kernel pins (pin_user_pages(FOLL_WRITE|FOLL_LONGTERM)) every
 * registered buffer (IORING_REGISTER_BUFFERS, BUFFERS2, BUFFERS_UPDATE) and
 * the memory of a provided-buffer ring the program supplies itself
 * (IORING_REGISTER_PBUF_RING without IOU_PBUF_RING_MMAP).  Not the buffers
 * such a ring hands out: those are plain user memory at I/O time.  Each
 * buffer slot and each buffer ring is one range (source uring,
 * SAFEFORK_KERNEL_PIN), held in pins.c under the ring's descriptor.
 *
 * liburing 2.2+ makes its system calls with inline assembly on x86-64 and
 * aarch64, so its exported calls are wrapped (under liburing.so.2's own
 * versions), and syscall(__NR_io_uring_register, ...) is decoded for older
 * liburing and for programs that make the call themselves (wrap_syscall.S
 * routes that number to sf_uring_syscall).  Both end in registered().
 *
 * Ranges leave when the kernel unpins: unregistration, a slot replaced by
 * an update, and the ring's end: io_uring_queue_exit(), or close() of the
 * ring's last descriptor in this process (a dup()ed descriptor inherits the
 * ranges; a descriptor another process holds is not counted: the ring is
 * of no more use to this one).  dup2()/close_range() over a ring are not
 * followed, nor the close of a registered-ring index outside
 * io_uring_queue_exit; a later registration on a reused descriptor
 * replaces what was recorded for it.
 *
 * No unsharing before these pins: pinning for write breaks copy-on-write
 * sharing in the kernel itself.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"
#include "interpose.h"
#include "msg.h"
#include "pins.h"
#include "ranges.h"
#include "stats.h"
#include "sysmem.h"

/* linux/io_uring.h values (ABI): newer than some installed headers. */
#define REGISTER_BUFFERS 0
#define UNREGISTER_BUFFERS 1
#define REGISTER_BUFFERS2 15
#define REGISTER_BUFFERS_UPDATE 16
#define REGISTER_PBUF_RING 22
#define UNREGISTER_PBUF_RING 23
#define REGISTER_USE_REGISTERED_RING (1u << 31)
#define RSRC_REGISTER_SPARSE (1u << 0)
#define PBUF_RING_MMAP 1 /* the kernel allocates the ring: nothing of ours is pinned */
#define BUF_SIZE 16      /* struct io_uring_buf */
#ifndef SYS_io_uring_register
#define SYS_io_uring_register 427
#endif
#ifndef SYS_kcmp
#define SYS_kcmp 312
#endif
#define KCMP_FILE 0

struct rsrc_register { /* struct io_uring_rsrc_register */
	uint32_t nr, flags;
	uint64_t resv2, data, tags;
};
struct rsrc_update2 { /* struct io_uring_rsrc_update2 */
	uint32_t offset, resv;
	uint64_t data, tags;
	uint32_t nr, resv2;
};
struct buf_reg { /* struct io_uring_buf_reg */
	uint64_t ring_addr;
	uint32_t ring_entries;
	uint16_t bgid, flags;
	uint64_t resv[3];
};

/* liburing 2.x's struct io_uring up to ring_fd: the layout liburing.so.2 keeps. */
struct uring_head {
	void *sq_ptrs[8];
	unsigned sq_head_tail[2];
	size_t sq_ring_sz;
	void *sq_ring_ptr;
	unsigned sq_rest[4];
	void *cq_ptrs[7];
	size_t cq_ring_sz;
	void *cq_ring_ptr;
	unsigned cq_rest[4];
	unsigned flags;
	int ring_fd;
	unsigned features;
	int enter_ring_fd;    /* liburing 2.2+: the registered-ring index, when int_flags has REG_RING */
	uint8_t int_flags;
};
#define INT_FLAG_REG_RING 1
#ifdef HAVE_LIBURING
#include <liburing.h>
_Static_assert(offsetof(struct io_uring, ring_fd) == offsetof(struct uring_head, ring_fd) &&
		       offsetof(struct io_uring, enter_ring_fd) == offsetof(struct uring_head, enter_ring_fd) &&
		       offsetof(struct io_uring, int_flags) == offsetof(struct uring_head, int_flags),
	       "liburing layout");
_Static_assert(sizeof(struct io_uring_rsrc_register) == sizeof(struct rsrc_register) &&
		       sizeof(struct io_uring_rsrc_update2) == sizeof(struct rsrc_update2) &&
		       sizeof(struct io_uring_buf_reg) == sizeof(struct buf_reg) &&
		       sizeof(struct io_uring_buf) == BUF_SIZE,
	       "io_uring structures");
#endif

static int once_full, once_unreadable;

/* The kernel accepted arguments we cannot read a moment later (another thread unmapped them). */
static void unreadable(const char *what)
{
	sf_count(SF_C_FALLBACKS, 1);
	sf_msg_once(&once_unreadable, "cannot read the arguments of an io_uring %s the kernel accepted (unmapped "
		    "meanwhile?): those buffers are not tracked", what);
}

static int tracking(void)
{
	sf_init();
	return sf_mode != SAFEFORK_MODE_OFF;
}

static void hold(uint64_t ring, uint64_t index, uintptr_t start, size_t len)
{
	uintptr_t end = start + len < start ? UINTPTR_MAX : start + len;

	if (sf_pin_set(ring, index, start, start ? end : start, SAFEFORK_KERNEL_PIN, SF_SRC_URING) < 0) {
		sf_count(SF_C_FALLBACKS, 1);
		sf_msg_once(&once_full, "the range table is full (SAFEFORK_MAX_RANGES, or no memory): an io_uring "
			    "buffer of %zu bytes at %p is not protected at fork", len, (void *)start);
	}
}

/* Slots first.. now hold the buffers iov[0..n) (fresh: a new table, every other slot empty). */
static void slots(uint64_t ring, uint32_t first, const struct iovec *iov, unsigned n, int fresh)
{
	struct iovec chunk[64];

	if (fresh)
		sf_pin_clear(ring, 0, SF_PIN_SLOTS_END);
	for (unsigned i = 0; i < n;) {
		unsigned k = n - i < 64 ? n - i : 64;
		if (sf_peek(chunk, iov + i, k * sizeof(*iov)) < 0) {
			unreadable("buffer registration");
			return;
		}
		/* cppcheck-suppress knownConditionTrueFalse ; k >= 1 since i < n */
		for (unsigned j = 0; j < k; j++) /* a NULL base is an empty (sparse) slot */
			hold(ring, (uint64_t)first + i + j, (uintptr_t)chunk[j].iov_base, chunk[j].iov_len);
		i += k;
	}
}

/* After a successful io_uring_register(2) (ret >= 0): what the kernel pinned or unpinned. */
static void registered(uint64_t ring, unsigned op, const void *arg, unsigned nr, long ret)
{
	struct rsrc_register rr;
	struct rsrc_update2 up;
	struct buf_reg br;

	/* One step for the whole table (up to 16384 slots): one lock, one scratch reservation. */
	sf_pins_lock();
	/* The kernel checked the sizes (BUFFERS2 and BUFFERS_UPDATE take sizeof the structure). */
	switch (op) {
	case REGISTER_BUFFERS:
		slots(ring, 0, arg, nr, 1);
		break;
	case REGISTER_BUFFERS2:
		if (sf_peek(&rr, arg, sizeof(rr)) < 0)
			unreadable("buffer registration");
		else
			slots(ring, 0, (const struct iovec *)(uintptr_t)rr.data,
			      (rr.flags & RSRC_REGISTER_SPARSE) ? 0 : rr.nr, 1);
		break;
	case REGISTER_BUFFERS_UPDATE: /* ret: how many slots were updated */
		if (sf_peek(&up, arg, sizeof(up)) < 0)
			unreadable("buffer update");
		else
			slots(ring, up.offset, (const struct iovec *)(uintptr_t)up.data, (unsigned)ret, 0);
		break;
	case UNREGISTER_BUFFERS:
		sf_pin_clear(ring, 0, SF_PIN_SLOTS_END);
		break;
	case REGISTER_PBUF_RING:
		if (sf_peek(&br, arg, sizeof(br)) < 0)
			unreadable("buffer ring registration");
		else if (!(br.flags & PBUF_RING_MMAP))
			hold(ring, SF_PIN_BUF_RING(br.bgid), (uintptr_t)br.ring_addr, (size_t)br.ring_entries * BUF_SIZE);
		break;
	case UNREGISTER_PBUF_RING:
		if (sf_peek(&br, arg, sizeof(br)) < 0)
			unreadable("buffer ring unregistration");
		else
			sf_pin_clear(ring, SF_PIN_BUF_RING(br.bgid), SF_PIN_BUF_RING(br.bgid) + 1);
		break;
	}
	sf_pins_unlock();
}

static void decode(unsigned fd, unsigned op, const void *arg, unsigned nr, long ret)
{
	uint64_t ring = (op & REGISTER_USE_REGISTERED_RING) ? SF_PIN_RING_REG(fd) : SF_PIN_RING(fd);

	if (ret >= 0)
		registered(ring, op & ~REGISTER_USE_REGISTERED_RING, arg, nr, ret);
}

#ifdef SF_WRAP_SYSCALL
/* syscall(__NR_io_uring_register, fd, opcode, arg, nr_args), from sf_syscall_slow. */
SF_HIDDEN long sf_uring_syscall(long fd, long op, long arg, long nr, long a5, long a6)
{
	long ret = SF_REAL(syscall)(SYS_io_uring_register, fd, op, arg, nr, a5, a6);

	if (ret >= 0 && tracking()) {
		int saved = errno;
		decode((unsigned)fd, (unsigned)op, (const void *)arg, (unsigned)nr, ret);
		errno = saved;
	}
	return ret;
}
#endif

/* ---------------------------------------------------------------- ring ends */

struct dirent64_head {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

/* Another descriptor of this process on the same open file as fd (a dup()), or -1 (also when kcmp is refused). */
static int another_descriptor(int fd)
{
	char buf[4096] __attribute__((aligned(8)));
	long me = getpid(), n;
	int found = -1;
	int dir = (int)sf_syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dir < 0)
		return -1;
	while (found < 0 && (n = sf_syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n && found < 0;) {
			const struct dirent64_head *d = (const void *)(buf + off);
			/* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign): getdents64 filled buf (raw system call) */
			off += d->reclen;
			int other = 0;
			const char *c = d->name;
			for (; *c >= '0' && *c <= '9'; c++)
				other = other * 10 + (*c - '0');
			if (*c || c == d->name || other == fd || other == dir)
				continue;
			if (sf_syscall(SYS_kcmp, me, me, KCMP_FILE, fd, other) == 0)
				found = other;
		}
	}
	sf_close(dir);
	return found;
}

/* fd is closed: its ranges go to another descriptor on the ring, or leave with the ring. */
static void ring_gone(int fd, int other)
{
	if (other >= 0)
		sf_pin_move(SF_PIN_RING(fd), SF_PIN_RING(other));
	else
		sf_pin_clear(SF_PIN_RING(fd), 0, UINT64_MAX);
}

SF_EXPORT int close(int fd)
{
	/* Every close() of the program passes here: one bit test unless fd is a ring with ranges. */
	if (!sf_pin_maybe_ring_fd(fd) || !sf_pins_mine())
		return SF_REAL(close)(fd);
	sf_pins_lock(); /* no other thread's ring can take this descriptor number until we are done */
	int other = sf_pin_any(SF_PIN_RING(fd)) ? another_descriptor(fd) : -1;
	int rc = SF_REAL(close)(fd);
	int e = errno;
	if (rc == 0 || e != EBADF) /* Linux frees the descriptor even when close reports EINTR or EIO */
		ring_gone(fd, other);
	sf_pins_unlock();
	errno = e;
	return rc;
}

/* ---------------------------------------------------------------- liburing */

/* Every liburing.so.2 has io_uring_queue_exit@LIBURING_2.0: without it there is nothing to wrap. */
#if SF_HAVE_io_uring_queue_exit

/*
 * Who a struct io_uring is to us (read without faulting): its descriptor,
 * or for a ring that has none (IORING_SETUP_REGISTERED_FD_ONLY, liburing
 * 2.5+) its registered index.  0 if unreadable.
 */
static uint64_t ring_owner(const void *ring, struct uring_head *h)
{
	if (!ring || sf_peek(&h->ring_fd, (const char *)ring + offsetof(struct uring_head, ring_fd),
			     offsetof(struct uring_head, int_flags) + 1 - offsetof(struct uring_head, ring_fd)) < 0)
		return 0;
	if (h->ring_fd >= 0)
		return SF_PIN_RING(h->ring_fd);
	return h->int_flags & INT_FLAG_REG_RING && h->enter_ring_fd >= 0 ? SF_PIN_RING_REG(h->enter_ring_fd) : 0;
}

static int once_missing;

static int missing(const char *what)
{
	sf_msg_once(&once_missing, "%s called, but no liburing with it is loaded; the call fails (-ENOSYS)", what);
	return -ENOSYS;
}

/* After a liburing call that returned ret (>= 0: success): decode it as the system call it made. */
static void made(const void *ring, unsigned op, const void *arg, unsigned nr, long ret)
{
	struct uring_head h;
	uint64_t owner;

	if (ret >= 0 && tracking() && (owner = ring_owner(ring, &h)))
		registered(owner, op, arg, nr, ret);
}

#if SF_HAVE_io_uring_register_buffers
SF_OPT_SYMVER(io_uring_register_buffers);
SF_EXPORT int sf_opt_io_uring_register_buffers(void *ring, const struct iovec *iov, unsigned int nr)
{
	int (*real)(void *, const struct iovec *, unsigned int) = SF_NEXT(io_uring_register_buffers);

	if (!real)
		return missing("io_uring_register_buffers@" SF_VER_io_uring_register_buffers);
	int ret = real(ring, iov, nr);
	made(ring, REGISTER_BUFFERS, iov, nr, ret);
	return ret;
}
#endif

#if SF_HAVE_io_uring_register_buffers_tags
SF_OPT_SYMVER(io_uring_register_buffers_tags);
SF_EXPORT int sf_opt_io_uring_register_buffers_tags(void *ring, const struct iovec *iov, const uint64_t *tags,
						    unsigned int nr)
{
	int (*real)(void *, const struct iovec *, const uint64_t *, unsigned int) =
		SF_NEXT(io_uring_register_buffers_tags);

	if (!real)
		return missing("io_uring_register_buffers_tags@" SF_VER_io_uring_register_buffers_tags);
	int ret = real(ring, iov, tags, nr);
	made(ring, REGISTER_BUFFERS, iov, nr, ret); /* the same table as BUFFERS2 with tags */
	return ret;
}
#endif

#if SF_HAVE_io_uring_register_buffers_update_tag
SF_OPT_SYMVER(io_uring_register_buffers_update_tag);
SF_EXPORT int sf_opt_io_uring_register_buffers_update_tag(void *ring, unsigned int off, const struct iovec *iov,
							  const uint64_t *tags, unsigned int nr)
{
	int (*real)(void *, unsigned int, const struct iovec *, const uint64_t *, unsigned int) =
		SF_NEXT(io_uring_register_buffers_update_tag);
	struct uring_head h;
	uint64_t owner;

	if (!real)
		return missing("io_uring_register_buffers_update_tag@" SF_VER_io_uring_register_buffers_update_tag);
	int ret = real(ring, off, iov, tags, nr);
	if (ret > 0 && tracking() && (owner = ring_owner(ring, &h))) {
		sf_pins_lock();
		slots(owner, off, iov, (unsigned)ret, 0);
		sf_pins_unlock();
	}
	return ret;
}
#endif

#if SF_HAVE_io_uring_unregister_buffers
SF_OPT_SYMVER(io_uring_unregister_buffers);
SF_EXPORT int sf_opt_io_uring_unregister_buffers(void *ring)
{
	int (*real)(void *) = SF_NEXT(io_uring_unregister_buffers);

	if (!real)
		return missing("io_uring_unregister_buffers@" SF_VER_io_uring_unregister_buffers);
	int ret = real(ring);
	made(ring, UNREGISTER_BUFFERS, NULL, 0, ret);
	return ret;
}
#endif

#if SF_HAVE_io_uring_register_buf_ring
SF_OPT_SYMVER(io_uring_register_buf_ring);
SF_EXPORT int sf_opt_io_uring_register_buf_ring(void *ring, void *reg, unsigned int flags)
{
	int (*real)(void *, void *, unsigned int) = SF_NEXT(io_uring_register_buf_ring);

	if (!real)
		return missing("io_uring_register_buf_ring@" SF_VER_io_uring_register_buf_ring);
	int ret = real(ring, reg, flags);
	made(ring, REGISTER_PBUF_RING, reg, 1, ret);
	return ret;
}
#endif

#if SF_HAVE_io_uring_unregister_buf_ring
SF_OPT_SYMVER(io_uring_unregister_buf_ring);
SF_EXPORT int sf_opt_io_uring_unregister_buf_ring(void *ring, int bgid)
{
	int (*real)(void *, int) = SF_NEXT(io_uring_unregister_buf_ring);
	struct buf_reg br = { .bgid = (uint16_t)bgid };

	if (!real)
		return missing("io_uring_unregister_buf_ring@" SF_VER_io_uring_unregister_buf_ring);
	int ret = real(ring, bgid);
	made(ring, UNREGISTER_PBUF_RING, &br, 1, ret);
	return ret;
}
#endif

#if SF_HAVE_io_uring_register
/* liburing's raw io_uring_register(2) (2.3+): decoded as the system call. */
SF_OPT_SYMVER(io_uring_register);
SF_EXPORT int sf_opt_io_uring_register(unsigned int fd, unsigned int op, const void *arg, unsigned int nr)
{
	int (*real)(unsigned int, unsigned int, const void *, unsigned int) = SF_NEXT(io_uring_register);

	if (!real)
		return missing("io_uring_register@" SF_VER_io_uring_register);
	int ret = real(fd, op, arg, nr);
	if (ret >= 0 && tracking())
		decode(fd, op, arg, nr, ret);
	return ret;
}
#endif

#if SF_HAVE_io_uring_queue_exit
/* Unmaps the ring and closes its descriptor with its own system call, past our close(). */
SF_OPT_SYMVER(io_uring_queue_exit);
SF_EXPORT void sf_opt_io_uring_queue_exit(void *ring)
{
	void (*real)(void *) = SF_NEXT(io_uring_queue_exit);
	struct uring_head h;
	uint64_t owner = 0;
	int other = -1;

	if (!real) {
		missing("io_uring_queue_exit@" SF_VER_io_uring_queue_exit);
		return;
	}
	if (tracking() && sf_pins_mine() && (owner = ring_owner(ring, &h)) && SF_PIN_IS_RING(owner) &&
	    sf_pin_maybe_ring_fd(h.ring_fd) && sf_pin_any(owner))
		other = another_descriptor(h.ring_fd);
	real(ring);
	if (!owner)
		return;
	/* Not under our lock: an older liburing closes through close(), which takes it (and then finds nothing). */
	sf_pins_lock();
	if (SF_PIN_IS_RING(owner))
		ring_gone(h.ring_fd, other);
	else
		sf_pin_clear(owner, 0, UINT64_MAX);
	/* It unregisters its registered index too: what was recorded under it goes. */
	if (h.int_flags & INT_FLAG_REG_RING && SF_PIN_IS_RING(owner))
		sf_pin_clear(SF_PIN_RING_REG(h.enter_ring_fd), 0, UINT64_MAX);
	sf_pins_unlock();
}
#endif

#endif /* SF_HAVE_io_uring_queue_exit */
