/*
 * bad-input: what failing resources and misuse get.  Each case provokes the
 * failure through the real kernel or a real limit and checks for one line
 * starting "safefork:" (once), a safe fallback, the parent's data kept, and
 * no crash:
 *   unmapped    - ranges munmap()ed or free()d while registered
 *   rlimit-as   - staging memory cannot be had (RLIMIT_AS)
 *   nofile      - no descriptor left (RLIMIT_NOFILE): /proc/self/maps unreadable
 *   max-maps    - no VMA split possible (vm.max_map_count reached)
 *   fork-fails  - fork() itself fails (RLIMIT_NPROC, EAGAIN): state restored
 *   libc-first  - LD_PRELOAD puts the C library ahead of us: nothing comes
 *                 "next", the real functions are found through libc's handle
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include "harness.h"

#define LEN (16 * 4096ul)

static int role_unmapped(void)
{
	char *gone = NULL, *big = NULL;
	/* AddressSanitizer maps memory of its own into any hole at once: under it the hole is
	 * far below the kernel's mmap area and outside ASan's shadow and allocator regions */
	if (t_sanitized())
		gone = mmap((void *)0x3f0000000000ul, LEN, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (!gone || gone == MAP_FAILED)
		gone = t_map(LEN);
	/* ASan's allocator keeps freed chunks mapped (quarantine): the free()d case needs glibc's */
	if (!t_sanitized())
		big = malloc(4 << 20); /* an mmap()ed chunk: free() unmaps it */
	T_CHECK(t_register(gone, LEN, 0) == 0 && (t_sanitized() || (big && t_register(big, 4 << 20, 0) == 0)),
		"register");
	munmap(gone, LEN);
	free(big);
	struct t_case c = { .reg = t_map(LEN), .reg_len = LEN, .register_it = 1 };
	int v = t_case_run(&c);
	T_CHECK(t_case_run(&c) == v, "second fork differs");
	return v;
}

static int role_rlimit_as(void)
{
	size_t len = 64 << 20;
	char *buf = t_map(len);
	t_fill(buf, len, 1);
	T_CHECK(t_register(buf, len, 0) == 0, "register");
	struct t_device dev;
	t_dev_attach(&dev, buf, 8 * 4096);
	struct rlimit rl = { t_vm_size() + (4 << 20), RLIM_INFINITY };
	T_CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit");
	pid_t pid = fork();
	if (pid == 0) {
		/* the fallback: like MADV_DONTFORK, the child has lost the range (zeros here) */
		for (size_t i = 0; i < len; i += 4096)
			if (buf[i])
				_exit(2);
		_exit(0);
	}
	T_CHECK(pid > 0, "fork: %s", strerror(errno));
	t_fill(buf, len, 2);
	T_CHECK(t_wait(pid) == 0, "the child should see zeros");
	rl.rlim_cur = RLIM_INFINITY;
	setrlimit(RLIMIT_AS, &rl);
	char *seen = malloc(8 * 4096);
	t_dev_read(&dev, seen);
	return t_gen_of(seen, 8 * 4096, NULL) == 2 ? T_COHERENT : T_STALE;
}

static void use_up_fds(void *arg)
{
	(void)arg;
	struct rlimit rl = { 64, 64 };
	setrlimit(RLIMIT_NOFILE, &rl);
	while (open("/dev/null", O_RDONLY) >= 0)
		;
	T_CHECK(errno == EMFILE, "open: %s", strerror(errno));
}

static int role_nofile(void)
{
	struct t_case c = { .reg = t_map(LEN), .reg_len = LEN, .register_it = 1, .before_fork = use_up_fds };
	return t_case_run(&c);
}

static int max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	int n = 0;
	if (f) {
		if (fscanf(f, "%d", &n) != 1)
			n = 0;
		fclose(f);
	}
	return n;
}

static int role_max_maps(void)
{
	int max = max_map_count();
	if (max <= 0 || max > 1000000)
		t_skip("vm.max_map_count unreadable or too large (%d)", max);
	/* a mapping of its own (unmapped gaps around it: nothing merges into it), so keeping all
	 * of it out of the child takes nothing else along */
	char *raw = t_map(66 * 4096), *buf = raw + 4096;
	munmap(raw, 4096);
	munmap(raw + 65 * 4096, 4096);
	/* warm up: the staging pool and the scratch exist before the limit is reached */
	struct t_case c = { .reg = buf + 16 * 4096, .reg_len = LEN, .register_it = 1 };
	T_CHECK(t_case_run(&c) == T_COHERENT, "warm-up fork");
	/* every other page read-only: each mprotect adds two mappings, until none is left */
	size_t pages = (size_t)max + 16;
	char *filler = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	T_CHECK(filler != MAP_FAILED, "mmap filler");
	size_t i;
	for (i = 1; i < pages; i += 2)
		if (mprotect(filler + i * 4096, 4096, PROT_READ) != 0)
			break;
	T_CHECK(errno == ENOMEM, "expected to run out of mappings (%s)", strerror(errno));
	t_note("%d mappings, limit %d", t_vma_count(), max);
	int v = t_case_run(&c);
	munmap(filler, pages * 4096);
	return v;
}

static int role_fork_fails(void)
{
	struct rlimit rl;
	char *buf = t_map(LEN);
	t_fill(buf, LEN, 1);
	T_CHECK(t_register(buf, LEN, 0) == 0, "register");
	/* one successful fork first: the staging pool, kept between forks, exists from then on */
	pid_t warm = fork();
	if (warm == 0)
		_exit(0);
	T_CHECK(warm > 0 && t_wait(warm) == 0, "warm-up fork");
	int vmas = t_vma_count();
	getrlimit(RLIMIT_NPROC, &rl);
	struct rlimit one = { 1, rl.rlim_max };
	T_CHECK(setrlimit(RLIMIT_NPROC, &one) == 0, "setrlimit");
	errno = 0;
	pid_t pid = fork();
	int e = errno;
	if (pid == 0)
		_exit(0);
	setrlimit(RLIMIT_NPROC, &rl);
	T_CHECK(pid < 0 && e == EAGAIN, "fork should fail with EAGAIN: pid %d errno %d", (int)pid, e);
	T_CHECK(t_vma_count() == vmas, "mappings changed across the failed fork: %d -> %d", vmas, t_vma_count());
	T_CHECK(t_gen_of(buf, LEN, NULL) == 1, "data changed");
	/* the advice is undone: an ordinary fork now is protected exactly as before */
	T_CHECK(t_unregister(buf, LEN) == 0, "unregister");
	struct t_case c = { .reg = buf, .reg_len = LEN, .register_it = 1 };
	return t_case_run(&c);
}

static void expect(const char *self, const char *role, const char *env, int want, const char *msg, int lines)
{
	char err[8192];
	int st = t_run(self, role, 1, "copy", env, err, sizeof(err));
	if (st == T_SKIP || st == 126) {
		t_note("%s: skipped (%s)", role, st == 126 ? "cannot run as nobody here" : "see above");
		return;
	}
	T_CHECK(st == want, "%s: got status %d, want %d; stderr: %s", role, st, want, err);
	int reports, n = t_msg_lines(err, &reports);
	T_CHECK(n == lines && (!msg || strstr(err, msg)), "%s: want %d line(s) with \"%s\", got: %s", role, lines,
		msg ? msg : "", err);
	/* a fork whose protection degraded is reported with its call site, unasked (tests/reports) */
	T_CHECK(lines ? reports >= 1 : reports == 0, "%s: want %s call-site report, got: %s", role,
		lines ? "a" : "no", err);
	t_note("%s: %s", role, lines ? err : "silent");
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		if (!strcmp(argv[1], "unmapped"))
			return role_unmapped();
		if (!strcmp(argv[1], "rlimit-as"))
			return role_rlimit_as();
		if (!strcmp(argv[1], "nofile"))
			return role_nofile();
		if (!strcmp(argv[1], "max-maps"))
			return role_max_maps();
		if (!strcmp(argv[1], "libc-first")) {
			struct t_case c = { .reg = t_map(LEN), .reg_len = LEN, .register_it = 1 };
			return t_case_run(&c);
		}
		return role_fork_fails();
	}
	expect(argv[0], "unmapped", NULL, T_COHERENT, "no longer mapped", 1);
	expect(argv[0], "rlimit-as", NULL, T_COHERENT, "staging memory", 1);
	expect(argv[0], "nofile", NULL, T_COHERENT, "cannot read /proc/self/maps", 1);
	expect(argv[0], "max-maps", NULL, T_COHERENT, "vm.max_map_count", 1);
	expect(argv[0], "fork-fails", getuid() == 0 ? "T_AS_NOBODY=1" : NULL, T_COHERENT, NULL, 0);
	/* LD_PRELOAD="libc.so.6 libsafefork.so": once a crash (no next fork to call) */
	const char *prefix = getenv("T_PRELOAD_PREFIX");
	char libc_first[512];
	snprintf(libc_first, sizeof(libc_first), "%s%slibc.so.6", prefix ? prefix : "", prefix && *prefix ? " " : "");
	setenv("T_PRELOAD_PREFIX", libc_first, 1);
	expect(argv[0], "libc-first", NULL, T_COHERENT, NULL, 0);
	t_pass("every failure degrades safely with one line");
}
