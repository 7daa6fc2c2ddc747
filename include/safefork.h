/*
 * safefork.h - fork() safety for memory pinned for device DMA.
 *
 * A process that registers memory with a device (ibv_reg_mr(), io_uring fixed
 * buffers, VFIO) has physical pages the device reads and writes directly.
 * fork() makes private pages copy-on-write, so the parent's next write moves
 * it to a new physical page while the device keeps the old one.  libsafefork
 * tracks the pinned ranges and, at every fork, applies a policy so that the
 * parent keeps its physical pages.
 *
 * The library is used either preloaded (LD_PRELOAD=libsafefork.so: the
 * verbs/io_uring registration calls and every fork entry point are
 * intercepted) or linked by a runtime that declares its own pinned ranges
 * with this API.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SAFEFORK_H
#define SAFEFORK_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAFEFORK_VERSION_MAJOR 0
#define SAFEFORK_VERSION_MINOR 1
#define SAFEFORK_VERSION_PATCH 0
/* (major << 16) | (minor << 8) | patch, for compile-time comparisons. */
#define SAFEFORK_VERSION_NUMBER \
	((SAFEFORK_VERSION_MAJOR << 16) | (SAFEFORK_VERSION_MINOR << 8) | SAFEFORK_VERSION_PATCH)

/*
 * Per-range policy flags for safefork_register().  0 means "apply the
 * process-wide mode" (SAFEFORK_MODE, or safefork_set_mode()).  At most one
 * policy bit may be given.
 */
#define SAFEFORK_COPY      0x1u /* the child gets a private copy (userspace early COW) */
#define SAFEFORK_DONTFORK  0x2u /* the child does not get these pages (MADV_DONTFORK) */
#define SAFEFORK_WIPE      0x4u /* the child sees zeros (MADV_WIPEONFORK) */
#define SAFEFORK_LOGONLY   0x8u /* change nothing, only report forks */
/*
 * Modifier: the range is pinned through the kernel's pin_user_pages() (as
 * verbs, io_uring and VFIO pin), so in "auto" mode the kernel's own fork
 * handling may be trusted where the probe says it copes.
 */
#define SAFEFORK_KERNEL_PIN 0x100u

/* Process-wide modes, as named by SAFEFORK_MODE. */
enum safefork_mode {
	SAFEFORK_MODE_AUTO = 0,
	SAFEFORK_MODE_COPY,
	SAFEFORK_MODE_DONTFORK,
	SAFEFORK_MODE_WIPE,
	SAFEFORK_MODE_LOG,
	SAFEFORK_MODE_OFF,
};

/*
 * Declare [addr, addr+len) as pinned for device DMA.  Any alignment; the
 * protection covers the whole pages (huge pages for hugetlb mappings) the
 * range touches.  Registrations may overlap and nest: registering the same
 * (addr, len) twice needs two unregistrations.
 *
 * Returns 0, or -1 with errno set: EINVAL (addr NULL, len 0, addr+len
 * overflows, unknown or conflicting flag bits), ENOMEM (the table cannot
 * grow).  Thread-safe; not async-signal-safe.
 */
int safefork_register(const void *addr, size_t len, unsigned int flags);

/*
 * Withdraw one registration of exactly [addr, addr+len).  Returns 0, or -1
 * with errno ENOENT (no such registration) or EINVAL (addr NULL, len 0).
 */
int safefork_unregister(const void *addr, size_t len);

/*
 * fork() with the registered ranges protected, for runtimes that link the
 * library instead of preloading it.  Same return and errno as fork().
 */
pid_t safefork_fork(void);

/* Read and change the process-wide mode at run time.  set returns 0 or -1/EINVAL. */
int safefork_set_mode(enum safefork_mode mode);
enum safefork_mode safefork_get_mode(void);

/*
 * The ways a process creates children, as counted by safefork_stats().
 * Entry points whose child shares the address space (vfork, CLONE_VM, the
 * exec-only children of system/popen/posix_spawn on glibc 2.29+) are counted
 * too, and also in forks_shared: there is nothing to copy for them.
 */
enum safefork_entry {
	SAFEFORK_ENTRY_FORK = 0,      /* fork() */
	SAFEFORK_ENTRY__FORK,         /* _Fork() (no atfork handlers) */
	SAFEFORK_ENTRY_CLONE,         /* clone(), __clone() */
	SAFEFORK_ENTRY_SYSCALL,       /* syscall(SYS_fork, SYS_vfork, SYS_clone, SYS_clone3) */
	SAFEFORK_ENTRY_DAEMON,        /* daemon() */
	SAFEFORK_ENTRY_FORKPTY,       /* forkpty() */
	SAFEFORK_ENTRY_SYSTEM,        /* system() */
	SAFEFORK_ENTRY_POPEN,         /* popen() */
	SAFEFORK_ENTRY_POSIX_SPAWN,   /* posix_spawn(), posix_spawnp(), pidfd_spawn(), pidfd_spawnp() */
	SAFEFORK_ENTRY_SAFEFORK_FORK, /* safefork_fork() */
	SAFEFORK_ENTRY_INTERNAL,      /* a C-library-internal fork no wrapper saw, caught by the atfork net */
	SAFEFORK_ENTRY_MAX = 16       /* room to grow; the array size in struct safefork_stats */
};

/* Where a registration came from. */
enum safefork_source {
	SAFEFORK_SOURCE_EXPLICIT = 0, /* safefork_register() */
	SAFEFORK_SOURCE_VERBS,        /* the ibv_reg_mr family */
	SAFEFORK_SOURCE_PROVIDER,     /* verbs providers' internal buffers (ibv_dontfork_range) */
	SAFEFORK_SOURCE_URING,        /* io_uring registered buffers and rings */
	SAFEFORK_SOURCE_MAX = 8
};

/*
 * What the library has done in this process.  Counters start at zero in
 * every process, children included.  Times are CLOCK_MONOTONIC nanoseconds
 * spent by the library around forks that had registered ranges.
 */
struct safefork_stats {
	unsigned long long forks[SAFEFORK_ENTRY_MAX]; /* children created, per enum safefork_entry */
	unsigned long long forks_shared;    /* of those, children sharing the address space: nothing to copy */
	unsigned long long forks_protected; /* forks that protected at least one registered range */
	unsigned long long forks_logged;    /* forks that left registered ranges copy-on-write, only reported */
	unsigned long long bytes_copied;    /* bytes copied for children by the copy policy */
	unsigned long long fallbacks;       /* protections that had to degrade (each said once on the log) */
	unsigned long long prepare_ns;      /* time before the fork */
	unsigned long long parent_ns;       /* time after the fork, in the parent */
	unsigned long long ranges[SAFEFORK_SOURCE_MAX]; /* live registrations, per enum safefork_source */
	unsigned long long bytes[SAFEFORK_SOURCE_MAX];  /* their bytes */
	/* Fields appended later: a program built with an older header passes its smaller size and never sees them. */
	unsigned long long child_ns;        /* time this process's children spent putting their copy back, summed
					       (each child adds its own to its parent's counters as it starts) */
};

/*
 * Fill *st.  Pass sizeof(struct safefork_stats): at most size bytes are
 * written, so a program built against this header keeps working when later
 * versions append fields.  Returns 0, or -1 with errno EINVAL (st NULL or
 * size 0).  Async-signal-safe.
 */
int safefork_stats(struct safefork_stats *st, size_t size);

/* The library's version string, e.g. "0.1.0". */
const char *safefork_version(void);

/*
 * What the running kernel protects by itself (the probe "auto" relies on)
 * and what a fork does now with each kind of range.  The policies are
 * SAFEFORK_MODE_COPY, _DONTFORK, _WIPE or _LOG, or SAFEFORK_MODE_OFF when
 * the library leaves the range alone (mode off, or auto trusting the kernel).
 */
struct safefork_kernel {
	int early_cow;         /* fork copies pinned pages for the child (Linux 5.9+) */
	int hugetlb_early_cow; /* ... hugetlb pages too (5.12+) */
	int reliable_pins;     /* a pin of a page shared with a child unshares it (5.19+; from the version) */
	int probed;            /* 1: early_cow was observed on this kernel; 0: read off its version */
	const char *early_cow_how, *hugetlb_how; /* how each answer was found */
	const char *probe_failed;                /* why the probe could not run, or NULL */
	enum safefork_mode mode;                 /* the process-wide mode */
	enum safefork_mode explicit_policy;      /* for ranges registered with flags 0 */
	enum safefork_mode kernel_pin_policy;    /* for kernel pins: verbs, io_uring, SAFEFORK_KERNEL_PIN */
};

/*
 * Probe the kernel if not done yet (it forks a short-lived child; not from
 * a signal handler) and fill *k with at most size bytes (pass
 * sizeof(struct safefork_kernel)).  Returns 0, or -1 with errno EINVAL.
 */
int safefork_probe(struct safefork_kernel *k, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* SAFEFORK_H */
