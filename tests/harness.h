/*
 * harness.h - what every test shares: verdicts, the vmsplice "device",
 * physical page identity, and running a scenario with and without the
 * library.
 *
 * A test is one small program per behaviour.  It exits 0 (PASS), 77 (SKIP,
 * with the reason on stdout) or 1 (FAIL, with what went wrong).
 */
#ifndef T_HARNESS_H
#define T_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define T_PASS 0
#define T_FAIL 1
#define T_SKIP 77

void t_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void t_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void t_pass(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void t_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define T_CHECK(cond, ...)                      \
	do {                                    \
		if (!(cond))                    \
			t_fail(__VA_ARGS__);    \
	} while (0)

/* ---- the library, resolved at run time so a test also runs without it ---- */
/* safefork_register/unregister if the library is loaded, else functions that do nothing. */
int t_register(const void *addr, size_t len, unsigned flags);
int t_unregister(const void *addr, size_t len);
int t_lib_loaded(void);
/* safefork_stats() of the loaded library into *st; 0, or -1 when the library is absent (st zeroed). */
struct safefork_stats;
int t_stats(struct safefork_stats *st);
/* 1 when the library is loaded and SAFEFORK_MODE is not "off": it is expected to act. */
int t_lib_active(void);

/*
 * Re-run this test program (argv[0] with role as argv[1]) in a child process
 * with the library preloaded or not and SAFEFORK_MODE set (NULL: unset).
 * extra_env is "NAME=value" (several separated by spaces) or NULL; T_AS_NOBODY=1
 * there runs the role as user nobody (status 126: not possible here, e.g. a
 * build tree nobody cannot read).  Returns the child's exit status (0..255),
 * or -signal.  The child's stdout/stderr go to ours unless err_out is given:
 * then stderr is captured into it (NUL-terminated, at most err_size-1 bytes).
 */
int t_run(const char *self, const char *role, int preload, const char *mode, const char *extra_env,
	  char *err_out, size_t err_size);
/* 1 when the suite runs under AddressSanitizer (its allocator and SEGV handler change some outcomes). */
int t_sanitized(void);
/* Path of the built library (SAFEFORK_LIB from the test environment). */
const char *t_lib_path(void);

/* ---- physical pages ---- */
/* PFN of the page holding addr (faults it in first is the caller's job); 0 if absent or hidden. */
uint64_t t_pfn(const void *addr);
/* 1 when this process can see PFNs (root), else 0. */
int t_can_see_pfns(void);
/* /proc/self/pagemap bit 56: the page is mapped exclusively (not shared with a child). */
int t_page_exclusive(const void *addr);
/* The address space's size (VmSize in /proc/self/status), for RLIMIT_AS limits. */
size_t t_vm_size(void);
/*
 * Lines of err that start "safefork:" and are messages, not the call-site
 * report a degraded fork gets (its headline and frames); the headlines are
 * counted into *reports when it is not NULL.
 */
int t_msg_lines(const char *err, int *reports);
/* Open descriptors of this process (the one counting them excluded). */
int t_fd_count(void);
/* Number of lines in /proc/self/maps. */
int t_vma_count(void);
/* Sum of AnonHugePages (kB) of the mapping containing addr, from /proc/self/smaps; -1 if not found. */
long t_anon_huge_kb(const void *addr);
/* The mappings of /proc/self/maps except [heap] and [stack] (which grow on their own). */
struct t_map_ent {
	uintptr_t start, end;
	char line[160];
};
int t_maps_read(struct t_map_ent *out, int max);
/* 1 if the mapping holding addr has this VmFlags flag in smaps ("dc" DONTFORK, "wf" WIPEONFORK), 0 if not, -1 unknown. */
int t_vmflag(const void *addr, const char *flag);
/* 1 when /proc/self/maps contains the substring. */
int t_maps_contains(const char *needle);

/* ---- the device: vmsplice()d pipes hold references to the physical pages ---- */
struct t_device {
	int fds[64][2];
	int npipes;
	size_t len;
};
/* Take references to the pages of [buf, buf+len) (page aligned). */
void t_dev_attach(struct t_device *d, const void *buf, size_t len);
/* What the device now has in those pages (what a DMA read would send). */
void t_dev_read(struct t_device *d, void *out);
void t_dev_close(struct t_device *d);

/* ---- content ---- */
/* Fill with a pattern that identifies generation gen at every 8-byte word. */
void t_fill(void *buf, size_t len, uint32_t gen);
/* Generation found at every word, or -1 if mixed/other (first mismatch offset in *bad if not NULL). */
long t_gen_of(const void *buf, size_t len, size_t *bad);

/* Fail the test ("deadlock") if it is still running after this many seconds. */
void t_watchdog(unsigned seconds);

/* Wait for pid; returns exit status 0..255 or -signal. */
int t_wait(pid_t pid);

/* ---- the standard scenario ----
 * Fill the registered range with generation 1, let the device hold its
 * pages, fork; the child checks it sees generation 1 and writes 3 privately;
 * the parent writes 2.  Then: does the device see 2 (coherent: the parent
 * kept its physical pages, checked through PFNs as root) or 1 (stale)?
 */
#define T_COHERENT 10
#define T_STALE 11
struct t_case {
	void *reg;
	size_t reg_len;
	unsigned flags;
	int register_it;
	pid_t (*do_fork)(void);          /* NULL: fork() */
	int (*child_check)(void *arg);   /* extra checks in the child; 0 = fine */
	void (*before_fork)(void *arg);  /* last thing before the fork (after the device and pipes exist) */
	void (*parent_after_fork)(void *arg);
	void *arg;
	int no_handshake;                /* the parent runs only once the child is gone (CLONE_VFORK) */
};
/* The child's side of the case (for forks whose child starts elsewhere, e.g. clone). */
int t_case_child(const struct t_case *c);
/* Returns T_COHERENT or T_STALE; fails the test on anything else. */
int t_case_run(const struct t_case *c);
/* Run role in a child with this configuration and check its verdict; 0 if as expected. */
int t_expect(const char *self, const char *role, int preload, const char *mode, int want);
/* The usual four: copy and unset mode coherent; off and no library stale. */
int t_protect_and_control(const char *self, const char *role);

/* Page-aligned anonymous memory of len bytes (MAP_PRIVATE). */
void *t_map(size_t len);

#endif
