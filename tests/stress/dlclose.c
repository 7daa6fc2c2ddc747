/*
 * dlclose: a library registers buffers inside itself (.data, .bss) and is
 * dlclose()d without unregistering them, 100 times at STRESS_SCALE=1.  The
 * table still names the addresses (the library cannot know the program
 * will not map them again; unregistering before dlclose is the program's
 * job).  What the library does: at fork, parts no longer mapped are skipped
 * (one line per process), parts mapped again by something else are treated
 * as that mapping (a shared one is left shared, a private one copied as it
 * is now).  Checked: no crash; the child has no mapping where the library
 * was (nothing made up); a shared mapping placed there stays shared; the
 * library loaded again (often at the same address) reaches the child
 * intact; the table's counts are the registrations made, no more.
 * Then the standard device check on an ordinary buffer, with its controls.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "stress.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static void *bufs[4];

static int mapped(const void *p, size_t len)
{
	unsigned char vec[64];
	return mincore((void *)((uintptr_t)p & ~4095ul), len < 64 * 4096 ? len : 64 * 4096, vec) == 0;
}

static int child_status(int (*fn)(void))
{
	pid_t pid = fork();
	if (pid == 0) {
		fflush(stdout);
		_exit(fn());
	}
	T_CHECK(pid > 0, "fork: %s", strerror(errno));
	return t_wait(pid);
}

static int child_nothing_there(void)
{
	return mapped(bufs[0], (size_t)bufs[1]) || mapped(bufs[2], (size_t)bufs[3]) ? 2 : 0;
}

static int child_sees_library(void)
{
	const unsigned char *d = bufs[0], *b = bufs[2];
	for (size_t i = 0; i < (size_t)bufs[1]; i++)
		if (d[i] != 0x5a)
			return 2;
	for (size_t i = 0; i < (size_t)bufs[3]; i++)
		if (b[i] != 0xa5)
			return 3;
	return 0;
}

static int child_writes_shared(void)
{
	memset((void *)((uintptr_t)bufs[2] & ~4095ul), 0x77, 4096);
	return 0;
}

static const char *lib_path(void)
{
	static char p[4096];
	const char *lib = t_lib_path(); /* .../src/.libs/libsafefork.so: the module is beside the tests */
	snprintf(p, sizeof(p), "%.*s/tests/stress/.libs/libregisters.so", (int)(strstr(lib, "/src/.libs/") - lib), lib);
	return p;
}

static void load_and_close(void)
{
	void *h = dlopen(lib_path(), RTLD_NOW | RTLD_LOCAL);
	T_CHECK(h, "dlopen: %s", dlerror());
	int (*setup)(void *[4]) = (int (*)(void *[4]))dlsym(h, "libregisters_setup");
	T_CHECK(setup && setup(bufs) == 0, "libregisters_setup: %s", strerror(errno));
	T_CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
}

static int role(void)
{
	long cycles = s_n(100, 5);
	int lib = t_lib_loaded(); /* (SAFEFORK_MODE=off records registrations too) */

	s_watchdog(300);
	for (long i = 0; i < cycles; i++) {
		load_and_close();
		if (mapped(bufs[0], (size_t)bufs[1]) || mapped(bufs[2], (size_t)bufs[3]))
			t_skip("the library stayed mapped after dlclose (nodelete?)");
		int st = child_status(child_nothing_there);
		T_CHECK(st == 0, "cycle %ld: fork after dlclose: child status %d (2: a mapping made up where the library was)",
			i, st);
	}
	/* the registrations made, each left behind: the table counts them, nothing else */
	struct safefork_stats st = s_stats();
	unsigned long long want = lib ? 2ull * (unsigned long long)cycles : 0;
	T_CHECK(st.ranges[SAFEFORK_SOURCE_EXPLICIT] == want, "table: %llu ranges, expected %llu",
		st.ranges[SAFEFORK_SOURCE_EXPLICIT], want);

	/* something else at the library's .bss: a shared mapping stays shared */
	void *at = (void *)((uintptr_t)bufs[2] & ~4095ul);
	void *p = mmap(at, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == at) {
		memset(at, 0x11, 4096);
		T_CHECK(child_status(child_writes_shared) == 0, "fork with a shared mapping at the old .bss");
		T_CHECK(*(unsigned char *)at == 0x77, "the shared mapping at the old .bss was not shared with the child");
		munmap(p, 4096);
	} else {
		t_note("cannot map at the old .bss (%s): shared case skipped", strerror(errno));
		if (p != MAP_FAILED)
			munmap(p, 4096);
	}

	/* loaded again and left loaded: its buffers reach the child intact */
	void *h = dlopen(lib_path(), RTLD_NOW | RTLD_LOCAL);
	int (*setup)(void *[4]) = h ? (int (*)(void *[4]))dlsym(h, "libregisters_setup") : NULL;
	T_CHECK(setup && setup(bufs) == 0, "dlopen again");
	T_CHECK(child_status(child_sees_library) == 0, "the library loaded again: the child does not see its buffers");
	printf("figures: %ld dlopen/register/dlclose cycles, a fork after each; %llu ranges left behind in the table\n",
	       cycles, s_stats().ranges[SAFEFORK_SOURCE_EXPLICIT]);

	struct t_case c = { .reg = t_map(16 * 4096), .reg_len = 16 * 4096, .register_it = 1 };
	return t_case_run(&c);
}

int main(int argc, char **argv)
{
	char err[8192];

	if (argc > 1)
		return role();
	int st = t_run(argv[0], "dlclose", 1, "copy", NULL, err, sizeof(err));
	if (st == T_SKIP)
		return T_SKIP;
	T_CHECK(st == T_COHERENT, "status %d; stderr: %s", st, err);
	/* The library's .bss may share its last page with the main thread's static TLS (ld.so places
	 * both in one anonymous mapping): that page is left copy-on-write, with its own line. */
	int lines = t_msg_lines(err, NULL), tcb = strstr(err, "thread control block") != NULL;
	T_CHECK(lines == 1 + tcb && strstr(err, "no longer mapped"), "want one line about the unmapped ranges, got: %s",
		err);
	t_note("said: %s", err);
	T_CHECK(t_expect(argv[0], "dlclose", 1, "off", T_STALE) == 0, "control");
	T_CHECK(t_expect(argv[0], "dlclose", 0, NULL, T_STALE) == 0, "control");
	t_pass("ranges left by a dlclose()d library: skipped at fork while unmapped, the new mapping's own when "
	       "reused; no crash, nothing made up in the child");
}
