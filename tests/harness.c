/* harness.c - shared test helpers; see harness.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "safefork.h"

extern char **environ;

static void vreport(const char *tag, const char *fmt, va_list ap)
{
	printf("%s: ", tag);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
}

void t_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("FAIL", fmt, ap);
	va_end(ap);
	exit(T_FAIL);
}

void t_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("SKIP", fmt, ap);
	va_end(ap);
	exit(T_SKIP);
}

void t_pass(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("PASS", fmt, ap);
	va_end(ap);
	exit(T_PASS);
}

void t_note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport("note", fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ library */

typedef int (*reg_fn)(const void *, size_t, unsigned);
typedef int (*unreg_fn)(const void *, size_t);

int t_lib_loaded(void)
{
	return dlsym(RTLD_DEFAULT, "safefork_register") != NULL;
}

/*
 * Resolved once, found or not (the library is preloaded or linked, never
 * dlopen()ed by a test, and never unloaded: -z nodelete).  dlsym takes the
 * dynamic linker's lock, and a failed one allocates its error: a fork from
 * a signal handler interrupting a registering thread must find neither
 * taken (tests/signal-fork).
 */
#define LIB_ABSENT ((void *)1)
static void *lib_fn(void **slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (!f) {
		f = dlsym(RTLD_DEFAULT, name);
		if (!f)
			f = LIB_ABSENT;
		__atomic_store_n(slot, f, __ATOMIC_RELEASE);
	}
	return f == LIB_ABSENT ? NULL : f;
}

int t_register(const void *addr, size_t len, unsigned flags)
{
	static void *slot;
	reg_fn f = (reg_fn)lib_fn(&slot, "safefork_register");
	return f ? f(addr, len, flags) : 0;
}

int t_unregister(const void *addr, size_t len)
{
	static void *slot;
	unreg_fn f = (unreg_fn)lib_fn(&slot, "safefork_unregister");
	return f ? f(addr, len) : 0;
}

int t_stats(struct safefork_stats *st)
{
	int (*f)(struct safefork_stats *, size_t) =
		(int (*)(struct safefork_stats *, size_t))dlsym(RTLD_DEFAULT, "safefork_stats");

	memset(st, 0, sizeof(*st));
	if (!f)
		return -1;
	T_CHECK(f(st, sizeof(*st)) == 0, "safefork_stats: %s", strerror(errno));
	return 0;
}

int t_lib_active(void)
{
	const char *m = getenv("SAFEFORK_MODE");
	return t_lib_loaded() && !(m && !strcmp(m, "off"));
}

const char *t_lib_path(void)
{
	const char *p = getenv("SAFEFORK_LIB");
	if (!p || !*p)
		t_fail("SAFEFORK_LIB is not set (run the tests through make check)");
	return p;
}

int t_wait(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1000;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return -WTERMSIG(st);
}

int t_run(const char *self, const char *role, int preload, const char *mode, const char *extra_env,
	  char *err_out, size_t err_size)
{
	static char preload_buf[4096], mode_buf[128];
	char *envp[512];
	int n = 0, errpipe[2] = { -1, -1 };

	for (char **e = environ; *e && n < 500; e++) {
		if (!strncmp(*e, "LD_PRELOAD=", 11) || !strncmp(*e, "SAFEFORK_MODE=", 14))
			continue;
		envp[n++] = *e;
	}
	if (preload) {
		/* A sanitizer runtime, when the suite runs under one, must come first. */
		const char *prefix = getenv("T_PRELOAD_PREFIX");
		snprintf(preload_buf, sizeof(preload_buf), "LD_PRELOAD=%s%s%s", prefix ? prefix : "",
			 prefix && *prefix ? " " : "", t_lib_path());
		envp[n++] = preload_buf;
	} else if (getenv("T_PRELOAD_PREFIX") && *getenv("T_PRELOAD_PREFIX")) {
		snprintf(preload_buf, sizeof(preload_buf), "LD_PRELOAD=%s", getenv("T_PRELOAD_PREFIX"));
		envp[n++] = preload_buf;
	}
	if (mode) {
		snprintf(mode_buf, sizeof(mode_buf), "SAFEFORK_MODE=%s", mode);
		envp[n++] = mode_buf;
	}
	static char extra_buf[1024];
	if (extra_env) { /* several assignments separated by spaces */
		snprintf(extra_buf, sizeof(extra_buf), "%s", extra_env);
		for (char *tok = strtok(extra_buf, " "); tok && n < 510; tok = strtok(NULL, " "))
			envp[n++] = tok;
	}
	envp[n] = NULL;

	fflush(stdout);
	fflush(stderr);
	if (err_out && pipe2(errpipe, O_CLOEXEC) < 0)
		t_fail("pipe: %s", strerror(errno));
	/* The executable by name: under valgrind, exec of /proc/self/exe would
	 * start valgrind's tool as the program (readlink gives the program's path). */
	static char exe[4096];
	ssize_t exe_len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (exe_len <= 0 || exe_len >= (ssize_t)sizeof(exe) - 1)
		strcpy(exe, "/proc/self/exe");
	else
		exe[exe_len] = '\0';
	pid_t pid = fork();
	if (pid < 0)
		t_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		char *argv[] = { (char *)self, (char *)role, NULL };
		if (err_out)
			dup2(errpipe[1], 2);
		/* T_AS_NOBODY=1 in extra_env: run the role without root (no PFNs in pagemap) */
		if (extra_env && strstr(extra_env, "T_AS_NOBODY=1")) {
			if (setgid(65534) != 0 || setuid(65534) != 0)
				_exit(126);
			/* a build tree nobody cannot read would silently drop the library: say "cannot" */
			if ((preload && access(t_lib_path(), R_OK) != 0) || access("/proc/self/exe", R_OK) != 0)
				_exit(126);
		}
		execve(exe, argv, envp);
		_exit(127);
	}
	if (err_out) {
		size_t have = 0;
		ssize_t r;
		close(errpipe[1]);
		while ((r = read(errpipe[0], err_out + have, err_size - 1 - have)) > 0 || (r < 0 && errno == EINTR))
			if (r > 0)
				have += (size_t)r;
		err_out[have] = '\0';
		close(errpipe[0]);
	}
	return t_wait(pid);
}

/* ------------------------------------------------------------ pages */

static uint64_t pagemap_entry(const void *addr)
{
	uint64_t e = 0;
	long ps = sysconf(_SC_PAGESIZE);
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		t_fail("open /proc/self/pagemap: %s", strerror(errno));
	if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)addr / (uintptr_t)ps * sizeof(e))) != sizeof(e))
		t_fail("read /proc/self/pagemap: %s", strerror(errno));
	close(fd);
	return e;
}

uint64_t t_pfn(const void *addr)
{
	uint64_t e = pagemap_entry(addr);
	return (e >> 63) & 1 ? e & ((1ull << 55) - 1) : 0;
}

int t_page_exclusive(const void *addr)
{
	return (int)((pagemap_entry(addr) >> 56) & 1);
}

int t_can_see_pfns(void)
{
	static volatile char probe = 1;
	probe = 2;
	return t_pfn((const void *)&probe) != 0;
}

int t_msg_lines(const char *err, int *reports)
{
	int n = 0, r = 0;

	for (const char *p = err; (p = strstr(p, "safefork:")); p++) {
		if (p != err && p[-1] != '\n')
			continue;
		if (!strncmp(p, "safefork:   ", 12)) /* a frame of a call-site report */
			continue;
		if (!strncmp(p, "safefork: degraded fork in pid ", 31)) /* a fallback's call-site report */
			r++;
		else
			n++;
	}
	if (reports)
		*reports = r;
	return n;
}

int t_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	struct dirent *e;

	if (!d)
		t_fail("opendir /proc/self/fd");
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the DIR's own */
}

size_t t_vm_size(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t kb = 0;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

int t_vma_count(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	int n = 0, c;

	if (!f)
		t_fail("open /proc/self/maps");
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

int t_maps_contains(const char *needle)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096];
	int found = 0;

	if (!f)
		t_fail("open /proc/self/maps");
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			found = 1;
	fclose(f);
	return found;
}

/* The line of the smaps entry for the mapping holding addr that starts with key, into out; 0 if found. */
static int smaps_field(const void *addr, const char *key, char *out, size_t size)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[4096];
	int inside = 0, rc = -1;

	if (!f)
		t_fail("open /proc/self/smaps");
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			inside = (uintptr_t)addr >= a && (uintptr_t)addr < b;
			continue;
		}
		if (inside && !strncmp(line, key, strlen(key))) {
			snprintf(out, size, "%s", line + strlen(key));
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

long t_anon_huge_kb(const void *addr)
{
	char v[256];
	long kb = -1;

	if (smaps_field(addr, "AnonHugePages:", v, sizeof(v)) == 0 && sscanf(v, "%ld", &kb) != 1)
		kb = -1;
	return kb;
}

/* ------------------------------------------------------------ device */

void t_dev_attach(struct t_device *d, const void *buf, size_t len)
{
	size_t done = 0;

	memset(d, 0, sizeof(*d));
	d->len = len;
	while (done < len) {
		if (d->npipes == 64)
			t_fail("device: buffer too large");
		int *p = d->fds[d->npipes++];
		if (pipe2(p, O_CLOEXEC) < 0)
			t_fail("pipe: %s", strerror(errno));
		int cap = fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
		if (cap < 0)
			cap = fcntl(p[1], F_GETPIPE_SZ);
		size_t chunk = len - done < (size_t)cap ? len - done : (size_t)cap;
		size_t put = 0;
		while (put < chunk) {
			struct iovec iov = { (char *)buf + done + put, chunk - put };
			ssize_t r = vmsplice(p[1], &iov, 1, SPLICE_F_NONBLOCK);
			if (r <= 0)
				t_fail("vmsplice: %s", r < 0 ? strerror(errno) : "no progress");
			put += (size_t)r;
		}
		done += chunk;
	}
}

void t_dev_read(struct t_device *d, void *out)
{
	size_t done = 0;

	for (int i = 0; i < d->npipes; i++) {
		ssize_t r;
		int avail = 0;
		if (ioctl(d->fds[i][0], FIONREAD, &avail) < 0)
			t_fail("FIONREAD");
		size_t want = (size_t)avail;
		while (want && (r = read(d->fds[i][0], (char *)out + done, want)) > 0) {
			done += (size_t)r;
			want -= (size_t)r;
		}
	}
	if (done != d->len)
		t_fail("device: read %zu of %zu bytes", done, d->len);
}

void t_dev_close(struct t_device *d)
{
	for (int i = 0; i < d->npipes; i++) {
		close(d->fds[i][0]);
		close(d->fds[i][1]);
	}
	d->npipes = 0;
}

/* ------------------------------------------------------------ content */

void t_fill(void *buf, size_t len, uint32_t gen)
{
	uint64_t *w = buf;
	for (size_t i = 0; i < len / 8; i++)
		w[i] = ((uint64_t)gen << 32) | (uint32_t)(i * 2654435761u);
	for (size_t i = len / 8 * 8; i < len; i++)
		((unsigned char *)buf)[i] = (unsigned char)gen;
}

long t_gen_of(const void *buf, size_t len, size_t *bad)
{
	const uint64_t *w = buf;
	long gen = len >= 8 ? (long)(w[0] >> 32) : ((const unsigned char *)buf)[0];

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != (((uint64_t)gen << 32) | (uint32_t)(i * 2654435761u))) {
			if (bad)
				*bad = i * 8;
			return -1;
		}
	for (size_t i = len / 8 * 8; i < len; i++)
		if (((const unsigned char *)buf)[i] != (unsigned char)gen) {
			if (bad)
				*bad = i;
			return -1;
		}
	return gen;
}

void *t_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		t_fail("mmap %zu: %s", len, strerror(errno));
	return p;
}

/* ------------------------------------------------------------ the standard scenario */

/* The handshake that orders the writes: set up by t_case_run, -1 when unused. */
static int hs_checked[2] = { -1, -1 }, hs_wrote[2] = { -1, -1 };

int t_case_child(const struct t_case *c)
{
	size_t bad = 0;
	long g = t_gen_of(c->reg, c->reg_len, &bad);
	char x = 0;

	if (g != 1) {
		printf("child: registered range holds generation %ld (bad at +%zu), expected the fork-time 1\n", g, bad);
		fflush(stdout);
		return 2;
	}
	/* Let the parent write first, while this child still maps the pages: the
	 * order in which copy-on-write moves the parent off the device's pages. */
	if (hs_checked[1] >= 0 && !c->no_handshake) {
		if (write(hs_checked[1], "c", 1) != 1 || read(hs_wrote[0], &x, 1) != 1)
			return 5;
	}
	t_fill(c->reg, c->reg_len, 3);
	if (t_gen_of(c->reg, c->reg_len, NULL) != 3)
		return 3;
	if (c->child_check && c->child_check(c->arg) != 0)
		return 4;
	return 0;
}

static pid_t plain_fork(void)
{
	return fork();
}

int t_case_run(const struct t_case *c)
{
	long ps = sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)c->reg & ~(uintptr_t)(ps - 1);
	uintptr_t b = ((uintptr_t)c->reg + c->reg_len + (uintptr_t)ps - 1) & ~(uintptr_t)(ps - 1);
	size_t npages = (b - a) / (size_t)ps, off = (uintptr_t)c->reg - a;
	int pfns = t_can_see_pfns(), same_pfns = 1;
	static uint64_t before[1 << 16];
	struct t_device dev;
	char *seen;

	T_CHECK(npages <= sizeof(before) / sizeof(before[0]), "case too large");
	t_fill(c->reg, c->reg_len, 1);
	if (c->register_it)
		T_CHECK(t_register(c->reg, c->reg_len, c->flags) == 0, "register: %s", strerror(errno));
	for (size_t i = 0; pfns && i < npages; i++)
		before[i] = t_pfn((char *)a + i * (size_t)ps);
	t_dev_attach(&dev, (void *)a, b - a);
	T_CHECK(pipe2(hs_checked, O_CLOEXEC) == 0 && pipe2(hs_wrote, O_CLOEXEC) == 0, "pipe");

	if (c->before_fork)
		c->before_fork(c->arg);
	pid_t pid = (c->do_fork ? c->do_fork : plain_fork)();
	if (pid < 0)
		t_fail("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(t_case_child(c));
	/* only the child writes "checked" and reads "wrote": a dead child then reads as EOF */
	close(hs_checked[1]);
	close(hs_wrote[0]);
	hs_checked[1] = hs_wrote[0] = -1;
	if (c->parent_after_fork)
		c->parent_after_fork(c->arg);
	char x = 0;
	if (!c->no_handshake && read(hs_checked[0], &x, 1) != 1)
		t_fail("handshake: the child did not check in (status %d)", t_wait(pid));
	t_fill(c->reg, c->reg_len, 2);
	if (!c->no_handshake && write(hs_wrote[1], "w", 1) != 1)
		t_fail("handshake");
	int st = t_wait(pid);
	for (int i = 0; i < 2; i++) {
		if (hs_checked[i] >= 0)
			close(hs_checked[i]);
		if (hs_wrote[i] >= 0)
			close(hs_wrote[i]);
		hs_checked[i] = hs_wrote[i] = -1;
	}
	T_CHECK(st == 0, "child failed with status %d", st);
	T_CHECK(t_gen_of(c->reg, c->reg_len, NULL) == 2, "the parent lost its own write (child's write leaked?)");
	for (size_t i = 0; pfns && i < npages; i++)
		if (t_pfn((char *)a + i * (size_t)ps) != before[i])
			same_pfns = 0;

	seen = malloc(b - a);
	T_CHECK(seen != NULL, "malloc");
	t_dev_read(&dev, seen);
	t_dev_close(&dev);
	long g = t_gen_of(seen + off, c->reg_len, NULL);
	free(seen);
	if (c->register_it)
		T_CHECK(t_unregister(c->reg, c->reg_len) == 0, "unregister: %s", strerror(errno));

	if (g == 2) {
		T_CHECK(!pfns || same_pfns, "device coherent but the parent's PFNs changed");
		t_note("device sees the parent's new data; %s", pfns ? "parent kept its physical pages" : "PFNs hidden (not root)");
		return T_COHERENT;
	}
	if (g == 1) {
		T_CHECK(!pfns || !same_pfns, "device stale although the parent kept its PFNs");
		t_note("device sees STALE pre-fork data; %s", pfns ? "parent moved to new physical pages" : "PFNs hidden");
		return T_STALE;
	}
	if (g == 3) {
		/* Mapcount-based COW (hugetlb): the parent moved, then the child reused the device's page. */
		T_CHECK(!pfns || !same_pfns, "device sees the child's data although the parent kept its PFNs");
		t_note("device sees the CHILD's data: what it receives would be lost to the parent");
		return T_STALE;
	}
	t_fail("device sees neither generation (torn: %ld)", g);
}

int t_expect(const char *self, const char *role, int preload, const char *mode, int want)
{
	int st = t_run(self, role, preload, mode, NULL, NULL, 0);
	const char *cfg = preload ? (mode ? mode : "preloaded, mode unset") : "without the library";

	if (st == want) {
		t_note("%s [%s]: %s as expected", role, cfg, want == T_COHERENT ? "coherent" : "stale");
		return 0;
	}
	if (st == T_SKIP)
		t_skip("%s [%s] skipped", role, cfg);
	printf("FAIL: %s [%s]: got %s, expected %s\n", role, cfg,
	       st == T_COHERENT ? "coherent" : st == T_STALE ? "STALE" : "a failure",
	       want == T_COHERENT ? "coherent" : "STALE");
	return 1;
}

int t_protect_and_control(const char *self, const char *role)
{
	int bad = 0;

	bad |= t_expect(self, role, 1, "copy", T_COHERENT);
	bad |= t_expect(self, role, 1, NULL, T_COHERENT);
	bad |= t_expect(self, role, 1, "off", T_STALE);
	bad |= t_expect(self, role, 0, NULL, T_STALE);
	return bad ? T_FAIL : T_PASS;
}

int t_maps_read(struct t_map_ent *out, int max)
{
	/* open/read into a static buffer: no malloc, so the reading adds no mapping of its own */
	static char buf[1 << 20];
	size_t have = 0;
	ssize_t r;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC), n = 0;

	if (fd < 0)
		t_fail("open /proc/self/maps");
	while ((r = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0)
		have += (size_t)r;
	close(fd);
	buf[have] = 0;
	for (char *line = buf, *nl; *line && (nl = strchr(line, '\n')); line = nl + 1) {
		unsigned long a, b;
		*nl = 0;
		if (strstr(line, "[heap]") || strstr(line, "[stack]"))
			continue;
		if (sscanf(line, "%lx-%lx", &a, &b) == 2 && n < max) {
			out[n].start = a;
			out[n].end = b;
			snprintf(out[n].line, sizeof(out[n].line), "%.150s", line);
			n++;
		}
	}
	return n;
}

int t_vmflag(const void *addr, const char *flag)
{
	char v[1024], want[8];

	if (smaps_field(addr, "VmFlags:", v, sizeof(v)) != 0)
		return -1;
	snprintf(want, sizeof(want), " %s", flag);
	return strstr(v, want) != NULL;
}

int t_sanitized(void)
{
	const char *p = getenv("T_PRELOAD_PREFIX");
	return p && *p;
}

static void watchdog_fired(int sig)
{
	static const char m[] = "FAIL: deadlock (watchdog)\n";
	(void)sig;
	if (write(1, m, sizeof(m) - 1) < 0)
		_exit(1);
	_exit(1);
}

void t_watchdog(unsigned seconds)
{
	signal(SIGALRM, watchdog_fired);
	alarm(seconds);
}
