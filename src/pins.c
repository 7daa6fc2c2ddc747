/*
 * pins.c - which range each pinning object holds (see pins.h).
 *
 * An open-addressing hash of (owner, index) -> the range it added to the
 * range table, in mmap()ed memory (no malloc in the library).  Only the
 * wrappers use it, outside the fork path: the fork path reads the range
 * table alone.  The child of a fork forgets it with the table.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "engine.h"
#include "lock.h"
#include "msg.h"
#include "pins.h"
#include "probe.h"
#include "ranges.h"
#include "report.h"
#include "stats.h"
#include "sysmem.h"

struct pin {
	uint64_t owner; /* 0: empty */
	uint64_t index;
	uintptr_t start, end;
	unsigned int flags, source;
};

static struct pin *tab;
static size_t size, used;
static sf_lock_t lock = SF_LOCK_INIT;
static SF_TLS int t_depth;      /* sf_pins_lock nesting on this thread */
static SF_TLS sigset_t t_mask;  /* the signal mask to restore */
static SF_TLS int t_added;      /* a range entered the table under the lock */
static int once_reserve;
/*
 * The process the records describe.  A child that shares our memory (vfork,
 * CLONE_VM) has its own descriptors: its close() of an inherited ring must
 * not withdraw our records.  Children that do not share it reset everything.
 */
static pid_t owner_pid;

/* Ring descriptors that hold (or held) ranges, for close(): one bit per descriptor below FD_BITS. */
#define FD_BITS 65536
static unsigned long ring_fds[FD_BITS / 64];
static int ring_fds_high; /* some descriptor at or above FD_BITS */

static void mark_fd(uint64_t owner, int on)
{
	if (!SF_PIN_IS_RING(owner))
		return;
	int fd = SF_PIN_FD(owner);
	if (fd < 0)
		return;
	if (fd >= FD_BITS) {
		if (on)
			__atomic_store_n(&ring_fds_high, 1, __ATOMIC_RELAXED);
		return;
	}
	unsigned long bit = 1ul << (fd % 64);
	if (on)
		__atomic_fetch_or(&ring_fds[fd / 64], bit, __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(&ring_fds[fd / 64], ~bit, __ATOMIC_RELAXED);
}

int sf_pins_mine(void)
{
	pid_t owner = __atomic_load_n(&owner_pid, __ATOMIC_RELAXED);
	return owner && owner == getpid();
}

int sf_pin_maybe_ring_fd(int fd)
{
	if (fd < 0)
		return 0;
	if (fd >= FD_BITS)
		return __atomic_load_n(&ring_fds_high, __ATOMIC_RELAXED);
	return (int)((__atomic_load_n(&ring_fds[fd / 64], __ATOMIC_RELAXED) >> (fd % 64)) & 1);
}

static size_t home(uint64_t owner, uint64_t index)
{
	uint64_t h = owner * 0x9E3779B97F4A7C15ull ^ (index + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
	return (size_t)(h ^ (h >> 29)) & (size - 1);
}

static long find(uint64_t owner, uint64_t index)
{
	if (!size)
		return -1;
	for (size_t i = home(owner, index); tab[i].owner; i = (i + 1) & (size - 1))
		if (tab[i].owner == owner && tab[i].index == index)
			return (long)i;
	return -1;
}

static void put(struct pin *t, size_t n, const struct pin *p)
{
	size_t i = home(p->owner, p->index) & (n - 1);

	while (t[i].owner)
		i = (i + 1) & (n - 1);
	t[i] = *p;
}

static int grow(void)
{
	size_t n = size ? size * 2 : 256;
	struct pin *t = sf_map(n * sizeof(*t));

	if (!t)
		return -ENOMEM;
	size_t old_size = size;
	struct pin *old = tab;
	size = n; /* home() masks with the new size */
	for (size_t i = 0; i < old_size; i++)
		if (old[i].owner)
			put(t, n, &old[i]);
	tab = t;
	if (old)
		sf_munmap(old, old_size * sizeof(*old));
	return 0;
}

/* Backward-shift deletion: the slot at i is free again, probe chains stay intact. */
static void remove_at(size_t i)
{
	size_t j = i;

	tab[i].owner = 0;
	for (;;) {
		j = (j + 1) & (size - 1);
		if (!tab[j].owner)
			break;
		size_t h = home(tab[j].owner, tab[j].index);
		if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
			tab[i] = tab[j];
			tab[j].owner = 0;
			i = j;
		}
	}
	used--;
}

static void withdraw(size_t i)
{
	const struct pin *p = &tab[i];

	sf_ranges_del_exact(p->start, p->end, p->flags, p->source);
	remove_at(i);
}

static void after_add(void);

void sf_pins_lock(void)
{
	if (t_depth++ == 0) {
		sigset_t all;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &t_mask);
		sf_lock(&lock);
	}
}

void sf_pins_unlock(void)
{
	if (--t_depth > 0)
		return;
	int added = t_added;
	t_added = 0;
	sf_unlock(&lock);
	pthread_sigmask(SIG_SETMASK, &t_mask, NULL);
	if (added)
		after_add();
}

static void after_add(void)
{
	/* As safefork_register: the fork path finds its scratch ready, and auto knows the kernel. */
	if (sf_engine_reserve(sf_ranges_live()) < 0) {
		sf_count(SF_C_FALLBACKS, 1);
		sf_msg_once(&once_reserve, "cannot map scratch memory for the fork plan of %zu ranges; a fork "
			    "protects what fits", sf_ranges_live());
	}
	if (sf_mode == SAFEFORK_MODE_AUTO || sf_debug || sf_report_wanted())
		sf_probe_ensure();
}

int sf_pin_set(uint64_t owner, uint64_t index, uintptr_t start, uintptr_t end, unsigned int flags,
	       unsigned int source)
{
	int rc = 0, saved = errno;

	sf_pins_lock();
	long i = find(owner, index);
	if (i >= 0)
		withdraw((size_t)i);
	if (start < end) {
		if ((used + 1) * 2 > size && grow() < 0)
			rc = -ENOMEM;
		else if ((rc = sf_ranges_add(start, end, flags, source)) == 0) {
			struct pin p = { owner, index, start, end, flags, source };
			if (!owner_pid)
				__atomic_store_n(&owner_pid, getpid(), __ATOMIC_RELAXED);
			put(tab, size, &p);
			used++;
			t_added = 1;
			mark_fd(owner, 1);
		}
	}
	sf_pins_unlock();
	errno = saved;
	return rc;
}

long sf_pin_lookup(uint64_t owner, uint64_t index)
{
	sf_pins_lock();
	long i = find(owner, index);
	long flags = i >= 0 ? (long)tab[i].flags : -1;
	sf_pins_unlock();
	return flags;
}

int sf_pin_range_add(uintptr_t start, uintptr_t end, unsigned int flags, unsigned int source)
{
	int saved = errno;

	/*
	 * No object to record: the table's own lock is enough, and the
	 * registration path makes no system call (the pins lock blocks signals).
	 */
	int rc = sf_ranges_add(start, end, flags, source);
	if (rc == 0 && t_depth)
		t_added = 1; /* the caller's sf_pins_unlock() follows up */
	else if (rc == 0)
		after_add();
	errno = saved;
	return rc;
}

int sf_pin_range_del(uintptr_t start, uintptr_t end, unsigned int flags, unsigned int source)
{
	int saved = errno;
	int rc = sf_ranges_del_exact(start, end, flags, source);

	errno = saved;
	return rc;
}

void sf_pin_clear(uint64_t owner, uint64_t lo, uint64_t hi)
{
	int saved = errno;

	sf_pins_lock();
	/* After a removal at i another entry may have moved into i: look at i again. */
	for (size_t i = 0; i < size;) {
		if (tab[i].owner == owner && tab[i].index >= lo && tab[i].index < hi)
			withdraw(i);
		else
			i++;
	}
	if (lo == 0 && hi == UINT64_MAX)
		mark_fd(owner, 0);
	sf_pins_unlock();
	errno = saved;
}

void sf_pin_move(uint64_t from, uint64_t to)
{
	sf_pins_lock();
	mark_fd(to, 1);
	mark_fd(from, 0);
again:
	for (size_t i = 0; i < size;) {
		if (tab[i].owner != from) {
			i++;
			continue;
		}
		struct pin p = tab[i];
		remove_at(i); /* another entry may move into i: look at i again */
		p.owner = to;
		long old = find(to, p.index);
		put(tab, size, &p);
		used++;
		if (old >= 0) { /* `to` held that index already (a stale record): its removal moves entries about */
			withdraw((size_t)old);
			goto again;
		}
	}
	sf_pins_unlock();
}

int sf_pin_any(uint64_t owner)
{
	int any = 0;

	sf_pins_lock();
	for (size_t i = 0; i < size && !any; i++)
		any = tab[i].owner == owner;
	sf_pins_unlock();
	return any;
}

void sf_pins_child_reset(void)
{
	owner_pid = 0;
	memset(ring_fds, 0, sizeof(ring_fds));
	ring_fds_high = 0;
	if (tab)
		sf_munmap(tab, size * sizeof(*tab));
	tab = NULL;
	size = used = 0;
	t_depth = t_added = 0;
	sf_lock_reset(&lock);
}
