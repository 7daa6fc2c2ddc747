/*
 * fork_insns.c - instructions of the fork path, which (unlike times) do not
 * move with the load of a shared machine: valgrind --tool=callgrind counts
 * the instructions executed inside fork() (the library's wrapper, its
 * prepare and parent steps, glibc's fork; not the kernel) in the parent,
 * with 0 and with 1 000 registered ranges of 4 KiB, scattered in a mapping
 * (one page registered, one not), in copy mode, and with the 1 000 ranges
 * in mode off (which must cost next to nothing: the targets "off and
 * nothing registered within 1.02x of a plain fork", which timings on a
 * shared machine cannot resolve).
 *
 * Run as the driver (no arguments but --lib/--quick): re-runs itself under
 * valgrind with LD_PRELOAD=libsafefork.so SAFEFORK_MODE=copy, once per
 * range count, and prints instructions per fork.  Exits 77 (skipped)
 * without valgrind.
 *
 * Usage: fork_insns [--lib=libsafefork.so] [--forks=20] [--quick]
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int role(int nranges, int forks)
{
	int (*reg)(const void *, size_t, unsigned) =
		(int (*)(const void *, size_t, unsigned))dlsym(RTLD_DEFAULT, "safefork_register");
	size_t len = 2 * (size_t)(nranges ? nranges : 1) * 4096;
	char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (!reg || a == MAP_FAILED)
		return 1;
	memset(a, 1, len);
	for (int i = 0; i < nranges; i++)
		if (reg(a + 2 * (size_t)i * 4096, 4096, 0) != 0)
			return 1;
	for (int i = 0; i < forks; i++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		if (pid < 0)
			return 1;
		waitpid(pid, NULL, 0);
	}
	return 0;
}

/* Total Ir of the parent's callgrind output (its "totals:" or "summary:" line). */
static long long total_ir(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512];
	long long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "totals: %lld", &v) == 1 || sscanf(line, "summary: %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	char self[4096], lib[4096] = "";
	int forks = 20, nranges = -1;
	const char *q = getenv("BENCH_QUICK");

	if (q && *q && strcmp(q, "0"))
		forks = 5;
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--lib=", 6))
			snprintf(lib, sizeof(lib), "%s", argv[i] + 6);
		else if (!strncmp(argv[i], "--forks=", 8))
			forks = atoi(argv[i] + 8);
		else if (!strncmp(argv[i], "--role=", 7))
			nranges = atoi(argv[i] + 7);
		else if (!strcmp(argv[i], "--quick"))
			forks = 5;
		else {
			fprintf(stderr, "usage: fork_insns [--lib=libsafefork.so] [--forks=20] [--quick]\n");
			return 2;
		}
	}
	if (forks < 1)
		forks = 1;
	if (nranges >= 0)
		return role(nranges, forks);
	if (system("valgrind --version >/dev/null 2>&1") != 0) {
		printf("fork_insns: skipped: no valgrind\n");
		return 77;
	}
	ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (l <= 0)
		return 1;
	self[l] = 0;
	if (!lib[0]) {
		char *slash = strrchr(self, '/');
		snprintf(lib, sizeof(lib), "%.*s/../src/.libs/libsafefork.so", (int)(slash - self), self);
	}
	printf("fork_insns: instructions of the library's fork path in the parent (callgrind, collecting\n"
	       "            inside sf_engine_prepare and sf_engine_parent),\n"
	       "            %d forks each, 4 KiB ranges with a page between them\n\n", forks);
	printf("%-28s %16s\n", "registered ranges", "instructions/fork");
	int counts[3] = { 0, 1000, 1000 };
	const char *modes[3] = { "copy", "copy", "off" };
	long long per[3] = { -1, -1, -1 };
	for (int k = 0; k < 3; k++) {
		char out[128], cmd[16384];
		snprintf(out, sizeof(out), "/tmp/fork_insns.%d.%d.out", (int)getpid(), k);
		/* %%p: each child writes a file of its own; the parent's is the one named by its pid */
		snprintf(cmd, sizeof(cmd),
			 "cd /tmp && LD_PRELOAD='%s' SAFEFORK_MODE=%s valgrind -q --tool=callgrind "
			 "--collect-atstart=no --toggle-collect=sf_engine_prepare --toggle-collect=sf_engine_parent --callgrind-out-file='%s.%%p' '%s' --role=%d --forks=%d "
			 "&& for f in '%s'.*; do echo \"$f\"; done",
			 lib, modes[k], out, self, counts[k], forks, out);
		FILE *p = popen(cmd, "r");
		char line[512];
		long long best = -1;
		while (p && fgets(line, sizeof(line), p)) {
			line[strcspn(line, "\n")] = 0;
			long long v = total_ir(line);
			if (v > best) /* the parent ran every fork: the largest count */
				best = v;
			unlink(line);
		}
		if (!p || pclose(p) != 0 || best < 0) {
			printf("fork_insns: the callgrind run failed\n");
			return 1;
		}
		per[k] = best / forks;
		char label[64];
		snprintf(label, sizeof(label), "%d, mode %s", counts[k], modes[k]);
		printf("%-28s %16lld\n", label, per[k]);
	}
	printf("\n(1000 ranges cost %.0f instructions per range at fork, beyond the kernel's work)\n",
	       (double)(per[1] - per[0]) / 1000);
	return 0;
}
