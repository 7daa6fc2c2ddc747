/*
 * reg_cost.c - what one registration + deregistration of pinned memory
 * costs in fork-safety bookkeeping: rdma-core's own fork support against
 * libsafefork's, on the same sequence of ranges.
 *
 *   rdma-core   no libsafefork; ibv_fork_init(), then ibv_dontfork_range()
 *               and ibv_dofork_range() (its red-black tree of page ranges
 *               and one madvise(MADV_DONTFORK / MADV_DOFORK) per change;
 *               Debian's libibverbs runs this without any RDMA device);
 *   rdma-off    context: the same calls without ibv_fork_init() (libibverbs
 *               then only notes that fork support was asked for too late);
 *   wrappers    libsafefork preloaded, SAFEFORK_MODE=copy: the same calls
 *               (ibv_fork_init included) reach the library's wrappers, the
 *               path every provider's queue buffer and every libibverbs
 *               registration takes (ibv_reg_mr calls ibv_dontfork_range);
 *   api         libsafefork preloaded, copy: safefork_register() and
 *               safefork_unregister(), the path of a runtime that declares
 *               its own pinned memory.
 *
 * The sequence: --ops registrations of random ranges of 4 KiB .. 1 MiB in
 * a 512 MiB arena (written before, as memory in use), each deregistered 32 registrations later (so 32 are
 * live), once with page-aligned ranges and once with ranges starting and
 * ending anywhere.  Every configuration runs in a process of its own
 * (this program re-executes itself) and the configurations are
 * interleaved for --rounds rounds; the figures are medians over the
 * rounds of the nanoseconds per registration (one register and one
 * deregister).  With strace available, one more run of each library
 * configuration under strace counts the system calls made between two
 * marker calls around the loop: the target is none.
 *
 * Usage: reg_cost [--ops=10000] [--rounds=5] [--lib=path/libsafefork.so]
 * (BENCH_QUICK=1 in the environment: --ops=1000 --rounds=1)
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include "median.h"

#include "safefork.h"

/* Exported by libibverbs (@IBVERBS_1.1) for its providers; declared in no public header. */
int ibv_dontfork_range(void *base, size_t size);
int ibv_dofork_range(void *base, size_t size);

#define ARENA (512ul << 20)
#define WINDOW 32
#define MAX_ROUNDS 64

enum { R_RDMA, R_RDMA_OFF, R_WRAP, R_API, NROLES };
static const char *const role_name[NROLES] = { "rdma-core", "rdma-off", "wrappers", "api" };
static const int role_preload[NROLES] = { 0, 0, 1, 1 };

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct op {
	size_t off, len;
};

/* xorshift64*: the same sequence in every process */
static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

static void make_ops(struct op *ops, int n, int aligned, uint64_t seed)
{
	rng_state = seed;
	for (int i = 0; i < n; i++) {
		size_t len = 4096 + (size_t)(rnd() % ((1u << 20) - 4096 + 1));
		size_t off = (size_t)(rnd() % (ARENA - len));
		if (aligned) {
			len = (len + 4095) & ~4095ul;
			off &= ~4095ul;
			if (off + len > ARENA)
				off = ARENA - len;
		}
		ops[i] = (struct op){ off, len };
	}
}

/* ------------------------------------------------------------ one role (a process of its own) */

typedef int (*reg_fn)(void *, size_t);

static int api_reg(void *p, size_t n)
{
	static int (*f)(const void *, size_t, unsigned);
	if (!f)
		f = (int (*)(const void *, size_t, unsigned))dlsym(RTLD_DEFAULT, "safefork_register");
	return f(p, n, 0);
}

static int api_unreg(void *p, size_t n)
{
	static int (*f)(const void *, size_t);
	if (!f)
		f = (int (*)(const void *, size_t))dlsym(RTLD_DEFAULT, "safefork_unregister");
	return f(p, n);
}

/* The loop; returns nanoseconds per registration (register + deregister), or -1 on a failed call. */
static double run_seq(char *arena, const struct op *ops, int n, reg_fn reg, reg_fn unreg, int markers)
{
	if (markers)
		syscall(SYS_getppid); /* strace marker: the loop starts */
	uint64_t t0 = now_ns();
	for (int i = 0; i < n + WINDOW; i++) {
		if (i < n && reg(arena + ops[i].off, ops[i].len) != 0)
			return -1;
		if (i >= WINDOW && unreg(arena + ops[i - WINDOW].off, ops[i - WINDOW].len) != 0)
			return -1;
	}
	uint64_t t1 = now_ns();
	if (markers)
		syscall(SYS_getppid); /* the loop ends */
	return (double)(t1 - t0) / n;
}

static int role_main(int role, int nops, int markers)
{
	char *arena = mmap(NULL, ARENA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct op *ops = calloc((size_t)nops, sizeof(*ops));
	reg_fn reg = ibv_dontfork_range, unreg = ibv_dofork_range;

	if (arena == MAP_FAILED || !ops) {
		perror("reg_cost: mmap/calloc");
		return 1;
	}
	memset(arena, 1, ARENA); /* registered memory is memory in use */
	int preloaded = dlsym(RTLD_DEFAULT, "safefork_register") != NULL;
	if (preloaded != role_preload[role]) {
		fprintf(stderr, "reg_cost: role %s: libsafefork %s\n", role_name[role],
			preloaded ? "is loaded but should not be" : "is not loaded (bad --lib?)");
		return 1;
	}
	if (role == R_RDMA || role == R_WRAP) {
		int rc = ibv_fork_init();
		if (rc) {
			fprintf(stderr, "reg_cost: ibv_fork_init: %s\n", strerror(rc));
			return 1;
		}
	}
	if (role == R_API) {
		reg = api_reg;
		unreg = api_unreg;
	}
	/* warm-up: first calls resolve symbols and map the library's tables */
	make_ops(ops, nops, 1, 42);
	run_seq(arena, ops, nops < 200 ? nops : 200, reg, unreg, 0);
	for (int aligned = 1; aligned >= 0; aligned--) {
		make_ops(ops, nops, aligned, aligned ? 1 : 2);
		double ns = run_seq(arena, ops, nops, reg, unreg, markers);
		if (ns < 0) {
			fprintf(stderr, "reg_cost: role %s: a (de)registration failed: %s\n", role_name[role],
				strerror(errno));
			return 1;
		}
		printf("%.1f\n", ns);
	}
	if (role_preload[role]) {
		/* the library did keep the table: every registration is gone again */
		struct safefork_stats st;
		int (*stats)(struct safefork_stats *, size_t) =
			(int (*)(struct safefork_stats *, size_t))dlsym(RTLD_DEFAULT, "safefork_stats");
		memset(&st, 0, sizeof(st));
		if (stats)
			stats(&st, sizeof(st));
		unsigned long long live = 0;
		for (int s = 0; s < SAFEFORK_SOURCE_MAX; s++)
			live += st.ranges[s];
		printf("%llu\n", live);
	}
	return 0;
}

/* ------------------------------------------------------------ the driver */

static char self[4096], lib[4096];

/* Run a role in a child; its stdout lines into vals.  Returns the number of values read, -1 on failure. */
static int run_role(int role, int nops, double *vals, int maxv, const char *strace_out)
{
	int pfd[2];
	char ops_arg[32], role_arg[32];

	if (pipe(pfd) < 0)
		return -1;
	snprintf(ops_arg, sizeof(ops_arg), "--ops=%d", nops);
	snprintf(role_arg, sizeof(role_arg), "--role=%d", role);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		if (role_preload[role]) {
			setenv("LD_PRELOAD", lib, 1);
			setenv("SAFEFORK_MODE", "copy", 1);
		} else {
			unsetenv("LD_PRELOAD");
		}
		if (strace_out)
			execlp("strace", "strace", "-f", "-qq", "-o", strace_out, self, role_arg, ops_arg, "--markers",
			       (char *)NULL);
		else
			execl(self, self, role_arg, ops_arg, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	FILE *f = fdopen(pfd[0], "r");
	int n = 0;
	char line[128];
	while (f && fgets(line, sizeof(line), f))
		if (n < maxv)
			vals[n++] = strtod(line, NULL);
	if (f)
		fclose(f);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? n : -1;
}

/* System calls between the two getppid markers of a strace -o file (either loop: the two runs). */
static long count_between_markers(const char *path, long *second)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	int inside = 0, marks = 0;
	long count[2] = { 0, 0 };

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "getppid()")) {
			marks++;
			inside = marks % 2;
			continue;
		}
		if (inside && marks <= 4 && line[0] && !strstr(line, "+++") && !strstr(line, "---"))
			count[(marks - 1) / 2]++;
	}
	fclose(f);
	*second = count[1];
	return marks >= 4 ? count[0] : -1;
}

static int have_strace(void)
{
	return system("strace -V >/dev/null 2>&1") == 0;
}

int main(int argc, char **argv)
{
	int nops = 10000, rounds = 5, role = -1, markers = 0;
	const char *q = getenv("BENCH_QUICK");

	if (q && *q && strcmp(q, "0")) {
		nops = 1000;
		rounds = 1;
	}
	snprintf(lib, sizeof(lib), "%s", "");
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--ops=", 6))
			nops = atoi(argv[i] + 6);
		else if (!strncmp(argv[i], "--rounds=", 9))
			rounds = atoi(argv[i] + 9);
		else if (!strncmp(argv[i], "--role=", 7))
			role = atoi(argv[i] + 7);
		else if (!strcmp(argv[i], "--markers"))
			markers = 1;
		else if (!strncmp(argv[i], "--lib=", 6))
			snprintf(lib, sizeof(lib), "%s", argv[i] + 6);
		else if (!strcmp(argv[i], "--quick")) {
			nops = 1000;
			rounds = 1;
		} else {
			fprintf(stderr, "usage: reg_cost [--ops=10000] [--rounds=5] [--lib=libsafefork.so] [--quick]\n");
			return 2;
		}
	}
	if (nops < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "reg_cost: --ops >= 1, 1 <= --rounds <= %d\n", MAX_ROUNDS);
		return 2;
	}
	if (role >= 0 && role < NROLES)
		return role_main(role, nops, markers);

	ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (l <= 0) {
		perror("reg_cost: /proc/self/exe");
		return 1;
	}
	self[l] = 0;
	if (!lib[0]) {
		/* bench/reg_cost next to src/.libs/libsafefork.so in the build tree */
		char *slash = strrchr(self, '/');
		snprintf(lib, sizeof(lib), "%.*s/../src/.libs/libsafefork.so", (int)(slash - self), self);
	}
	if (access(lib, R_OK) != 0) {
		fprintf(stderr, "reg_cost: no library at %s (--lib=)\n", lib);
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("reg_cost: fork-safety bookkeeping per registration (register + deregister), rdma-core vs libsafefork\n");
	printf("sequence: %d random ranges of 4 KiB..1 MiB in a 512 MiB arena, %d live at a time, page-aligned and\n"
	       "          unaligned; each configuration in its own process, %d interleaved round%s, medians\n",
	       nops, WINDOW, rounds, rounds == 1 ? "" : "s");

	double v[NROLES][2][MAX_ROUNDS];
	double live[NROLES] = { 0 };
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < NROLES; k++) {
			int ro = (k + r) % NROLES; /* rotate the order */
			double out[3];
			int n = run_role(ro, nops, out, 3, NULL);
			if (n < 2) {
				fprintf(stderr, "reg_cost: configuration %s failed\n", role_name[ro]);
				return 1;
			}
			v[ro][0][r] = out[0];
			v[ro][1][r] = out[1];
			if (n > 2 && out[2] > live[ro])
				live[ro] = out[2];
		}
	}
	double med[NROLES][2];
	for (int ro = 0; ro < NROLES; ro++)
		for (int a = 0; a < 2; a++)
			med[ro][a] = median(v[ro][a], rounds);

	printf("\nnanoseconds per registration (register + deregister), median:\n");
	printf("  %-11s %10s %10s\n", "", "aligned", "unaligned");
	for (int ro = 0; ro < NROLES; ro++)
		printf("  %-11s %10.0f %10.0f%s\n", role_name[ro], med[ro][0], med[ro][1],
		       ro == R_RDMA_OFF ? "   (context: no fork support at all)" : "");
	for (int ro = R_WRAP; ro <= R_API; ro++)
		if (live[ro])
			printf("  ** %s: %.0f registrations still in the table after the run\n", role_name[ro], live[ro]);

	/* system calls on the library's registration path */
	long sys[NROLES][2];
	int counted = 0;
	if (have_strace()) {
		char path[64];
		snprintf(path, sizeof(path), "/tmp/reg_cost.%d.strace", (int)getpid());
		int sops = nops < 1000 ? nops : 1000;
		for (int ro = R_RDMA; ro < NROLES; ro++) {
			double out[3];
			sys[ro][0] = sys[ro][1] = -1;
			if (ro == R_RDMA_OFF)
				continue;
			if (run_role(ro, sops, out, 3, path) >= 2)
				sys[ro][0] = count_between_markers(path, &sys[ro][1]);
			unlink(path);
		}
		counted = 1;
		printf("\nsystem calls per registration (strace, %d registrations):\n", sops);
		for (int ro = R_RDMA; ro < NROLES; ro++)
			if (ro != R_RDMA_OFF)
				printf("  %-11s aligned %.2f  unaligned %.2f\n", role_name[ro],
				       sys[ro][0] < 0 ? -1.0 : (double)sys[ro][0] / sops,
				       sys[ro][1] < 0 ? -1.0 : (double)sys[ro][1] / sops);
	} else {
		printf("\nsystem calls: not counted (no strace)\n");
	}

	printf("\ntargets (printed, not asserted):\n");
	for (int ro = R_WRAP; ro <= R_API; ro++)
		for (int a = 0; a < 2; a++) {
			double x = med[R_RDMA][a] / med[ro][a];
			printf("  %-8s %-9s: >= 10x cheaper than rdma-core: %.0f vs %.0f ns = %.1fx cheaper  %s\n",
			       role_name[ro], a == 0 ? "aligned" : "unaligned", med[ro][a], med[R_RDMA][a], x,
			       x >= 10 ? "MET" : "NOT MET");
		}
	if (counted)
		for (int ro = R_WRAP; ro <= R_API; ro++)
			printf("  %-8s no system call on the registration path (copy mode): %ld + %ld calls  %s\n",
			       role_name[ro], sys[ro][0], sys[ro][1],
			       sys[ro][0] == 0 && sys[ro][1] == 0 ? "MET" : "NOT MET");
	return 0;
}
