/*
 * pins.h - the pinning objects the wrappers have seen (a verbs memory
 * region, an io_uring buffer slot or buffer ring) and the range each holds
 * in the range table, so that the call that ends a pin (ibv_dereg_mr,
 * IORING_UNREGISTER_BUFFERS, the ring's last close) finds the range to
 * withdraw without reading the program's objects.
 */
#ifndef SF_PINS_H
#define SF_PINS_H

#include <stdint.h>

/* Owners: a memory region (its address), a ring (its descriptor, or its registered-ring index). */
#define SF_PIN_MR(mr) ((1ull << 60) | (uint64_t)(uintptr_t)(mr))
#define SF_PIN_RING(fd) ((2ull << 60) | (uint32_t)(fd))
#define SF_PIN_RING_REG(idx) ((3ull << 60) | (uint32_t)(idx))
#define SF_PIN_IS_RING(owner) (((owner) >> 60) == 2)
#define SF_PIN_FD(owner) ((int)(uint32_t)(owner))
/* Indexes within a ring: buffer slots, then buffer rings by group id. */
#define SF_PIN_SLOTS_END (1ull << 32)
#define SF_PIN_BUF_RING(bgid) (SF_PIN_SLOTS_END | (uint16_t)(bgid))
#define SF_PIN_BUF_RINGS_END (2ull << 32)

/*
 * (owner, index) now holds [start, end) with these table flags and source,
 * replacing whatever it held (start == end: nothing).  Returns 0, or -ENOMEM
 * when the table is full (then it holds nothing, and the caller says so).
 */
int sf_pin_set(uint64_t owner, uint64_t index, uintptr_t start, uintptr_t end, unsigned int flags,
	       unsigned int source);
/* The table flags of what (owner, index) holds, or -1 when it holds nothing. */
long sf_pin_lookup(uint64_t owner, uint64_t index);
/*
 * Ranges no object stands for (ibv_dontfork_range): straight into the
 * table, where identical ones count up.  add: 0 or -ENOMEM; del: 0 or -ENOENT.
 */
int sf_pin_range_add(uintptr_t start, uintptr_t end, unsigned int flags, unsigned int source);
int sf_pin_range_del(uintptr_t start, uintptr_t end, unsigned int flags, unsigned int source);
/* Withdraw what owner holds at every index in [lo, hi). */
void sf_pin_clear(uint64_t owner, uint64_t lo, uint64_t hi);
/* Everything owner holds now belongs to another owner (a ring's descriptor was dup()ed, the original closed). */
void sf_pin_move(uint64_t from, uint64_t to);

/* Does owner hold anything? */
int sf_pin_any(uint64_t owner);
/*
 * Might fd be a ring descriptor that holds ranges?  Lock-free and cheap:
 * close() asks it for every descriptor.  (A hint: may say yes for one that
 * held ranges once; never says no for one that holds some.)
 */
int sf_pin_maybe_ring_fd(int fd);

/* Are the records this process's (not a vfork()/CLONE_VM child's, which shares our memory)? */
int sf_pins_mine(void);

/*
 * Several of the above as one step (e.g. with the close of a ring between
 * them).  Nestable; signals are blocked while held, so a signal handler of
 * the same thread never finds it taken.
 */
void sf_pins_lock(void);
void sf_pins_unlock(void);

/* In the child after fork: nothing of the child is pinned. */
void sf_pins_child_reset(void);

#endif
