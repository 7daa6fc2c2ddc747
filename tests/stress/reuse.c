/*
 * reuse: registered ranges freed and their addresses reused by another
 * mapping before the fork (what a program that frees a registered buffer,
 * or dlclose()s a library that registered one, leaves behind).  The table
 * still names the addresses; at fork the library must neither crash nor
 * hand the child anything but what the new mapping holds:
 *   stack  - a thread registers a buffer on its stack and exits; a new
 *            thread gets the cached stack and forks; the main thread forks
 *            with a registered buffer on its own stack.  The child uses
 *            those pages before any handler runs: they are left
 *            copy-on-write (one line), the child lives.
 *   kinds  - the address is unmapped (skipped, one line), then reused by a
 *            private file mapping (the child sees the file), a shared
 *            mapping (still shared: the child's write reaches the parent),
 *            a PROT_NONE reservation and a read-only file mapping (still
 *            mapped in the child, same protection).
 *   random - thousands of forks, each after the registered address got a
 *            mapping of a kind chosen at random (or none): each child
 *            checks it sees what the parent mapped there, and nothing
 *            where the parent has nothing.
 * (A range unmapped by another thread *during* the fork is not covered:
 * the copy reads it, see doc/design.md.)
 * Each role also forks with an ordinary registered buffer held by the
 * device: still protected (coherent).  Controls: without the library and
 * with SAFEFORK_MODE=off, the same roles run and the device is stale.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "stress.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define LEN (16 * 4096ul)

/* The ordinary case, after the strange ones: a registered buffer the device holds. */
static int device_case(void)
{
	struct t_case c = { .reg = t_map(LEN), .reg_len = LEN, .register_it = 1 };
	return t_case_run(&c);
}

static int fork_and_wait(int (*child)(void *), void *arg)
{
	pid_t pid = fork();
	if (pid == 0) {
		fflush(stdout);
		_exit(child(arg));
	}
	T_CHECK(pid > 0, "fork: %s", strerror(errno));
	return t_wait(pid);
}

/* ---------------------------------------------------------------- stack */
static volatile uintptr_t left_on_stack;

static int child_ok(void *arg)
{
	(void)arg;
	return 0;
}

static void *register_on_stack(void *arg)
{
	char buf[32 << 10];
	memset(buf, 5, sizeof(buf));
	T_CHECK(t_register(buf, sizeof(buf), 0) == 0, "register a stack buffer");
	left_on_stack = (uintptr_t)buf; /* and never unregistered */
	return arg;
}

static void *fork_from_thread(void *arg)
{
	char here;
	int *st = arg;
	*st = fork_and_wait(child_ok, NULL);
	static int said;
	if (left_on_stack + (1 << 20) >= (uintptr_t)&here && left_on_stack <= (uintptr_t)&here + (1 << 20) && !said++)
		t_note("the new thread runs on the stack the registration was left on");
	return NULL;
}

static int role_stack(void)
{
	pthread_t t;
	int st = -1;
	char buf[8192];

	T_CHECK(pthread_create(&t, NULL, register_on_stack, NULL) == 0, "pthread_create");
	pthread_join(t, NULL);
	for (int i = 0; i < 20; i++) {
		T_CHECK(pthread_create(&t, NULL, fork_from_thread, &st) == 0, "pthread_create");
		pthread_join(t, NULL);
		T_CHECK(st == 0, "fork from a thread on a reused stack: child status %d", st);
	}
	memset(buf, 6, sizeof(buf));
	T_CHECK(t_register(buf, sizeof(buf), 0) == 0, "register");
	for (int i = 0; i < 20; i++)
		T_CHECK((st = fork_and_wait(child_ok, NULL)) == 0, "fork with a registered buffer on the forking "
			"thread's own stack: child status %d", st);
	T_CHECK(t_unregister(buf, sizeof(buf)) == 0, "unregister");
	return device_case();
}

/* ---------------------------------------------------------------- kinds */
static char *at;

static int map_at(int prot, int flags, int fd)
{
	void *p = mmap(at, LEN, prot, flags | MAP_FIXED_NOREPLACE, fd, 0);
	if (p == MAP_FAILED)
		t_fail("mmap at %p: %s", (void *)at, strerror(errno));
	T_CHECK(p == at, "mmap landed at %p, not %p (kernel without MAP_FIXED_NOREPLACE?)", p, (void *)at);
	return 0;
}

static int child_sees_gen(void *arg)
{
	return t_gen_of(at, LEN, NULL) == (long)(uintptr_t)arg ? 0 : 2;
}

static int child_writes(void *arg)
{
	t_fill(at, LEN, (uint32_t)(uintptr_t)arg);
	return 0;
}

static int child_mapped(void *arg)
{
	unsigned char vec[LEN / 4096];
	(void)arg;
	return mincore(at, LEN, vec) == 0 ? 0 : 2;
}

static int role_kinds(void)
{
	char path[] = "/tmp/safefork-reuse-XXXXXX";
	int fd = mkstemp(path);
	T_CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	char *content = t_map(LEN);
	t_fill(content, LEN, 40);
	T_CHECK(write(fd, content, LEN) == (ssize_t)LEN, "write");

	at = t_map(LEN);
	t_fill(at, LEN, 1);
	T_CHECK(t_register(at, LEN, 0) == 0, "register");
	T_CHECK(munmap(at, LEN) == 0, "munmap");

	/* nothing there */
	T_CHECK(fork_and_wait(child_ok, NULL) == 0, "fork with the range unmapped");

	/* a private file mapping: the child sees the file, the parent's later writes stay the parent's */
	map_at(PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
	T_CHECK(fork_and_wait(child_sees_gen, (void *)40ul) == 0, "private file mapping: the child does not see the file");
	t_fill(at, LEN, 41);
	T_CHECK(fork_and_wait(child_sees_gen, (void *)41ul) == 0, "private file mapping: the child does not see the "
		"parent's data at fork time");
	T_CHECK(pread(fd, content, LEN, 0) == (ssize_t)LEN && t_gen_of(content, LEN, NULL) == 40, "the file changed");
	munmap(at, LEN);

	/* a shared mapping: the child's write reaches the parent */
	int mfd = memfd_create("safefork-reuse", MFD_CLOEXEC);
	T_CHECK(mfd >= 0 && ftruncate(mfd, LEN) == 0, "memfd");
	map_at(PROT_READ | PROT_WRITE, MAP_SHARED, mfd);
	t_fill(at, LEN, 50);
	T_CHECK(fork_and_wait(child_writes, (void *)51ul) == 0, "shared mapping: child");
	T_CHECK(t_gen_of(at, LEN, NULL) == 51, "shared mapping: the child's write did not reach the parent (copied?)");
	munmap(at, LEN);
	close(mfd);

	/* a PROT_NONE reservation, a read-only file mapping: still there in the child */
	map_at(PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
	T_CHECK(fork_and_wait(child_mapped, NULL) == 0, "PROT_NONE reservation missing in the child");
	munmap(at, LEN);
	map_at(PROT_READ, MAP_PRIVATE, fd);
	T_CHECK(fork_and_wait(child_mapped, NULL) == 0, "read-only file mapping missing in the child");
	T_CHECK(fork_and_wait(child_sees_gen, (void *)40ul) == 0, "read-only file mapping: the child does not see the file");
	munmap(at, LEN);
	close(fd);
	return device_case();
}

/* ---------------------------------------------------------------- random */
/* The child's view, by what the parent mapped at the address before the fork. */
enum kind { K_NONE, K_ANON, K_FILE, K_SHARED, K_PROTNONE, K_RDONLY, K_NR };
static const char *const kind_names[K_NR] = { "nothing", "anonymous", "private file", "shared", "PROT_NONE",
					      "read-only file" };
static int kind_fd;
static uint32_t kind_gen;

static int child_checks(void *arg)
{
	enum kind k = (enum kind)(uintptr_t)arg;
	unsigned char vec[LEN / 4096];
	int mapped = mincore(at, LEN, vec) == 0;

	if (k == K_NONE)
		return mapped ? 2 : 0; /* nothing made up where the parent has nothing */
	if (!mapped)
		return 3;
	if (k == K_PROTNONE)
		return 0;
	if (t_gen_of(at, LEN, NULL) != (long)(k == K_RDONLY ? 40 : kind_gen))
		return 4;
	if (k == K_SHARED)
		t_fill(at, LEN, kind_gen + 1);
	return 0;
}

static int role_random(void)
{
	long rounds = s_n(3000, 100);
	unsigned seed = 12345, counts[K_NR] = { 0 };
	char path[] = "/tmp/safefork-reuse-XXXXXX";
	char *content = t_map(LEN);

	s_watchdog(300);
	kind_fd = mkstemp(path);
	T_CHECK(kind_fd >= 0, "mkstemp: %s", strerror(errno));
	unlink(path);
	t_fill(content, LEN, 40);
	T_CHECK(write(kind_fd, content, LEN) == (ssize_t)LEN, "write");
	int mfd = memfd_create("safefork-reuse", MFD_CLOEXEC);
	T_CHECK(mfd >= 0 && ftruncate(mfd, LEN) == 0, "memfd");
	at = t_map(LEN);
	T_CHECK(t_register(at, LEN, 0) == 0, "register");
	munmap(at, LEN);
	for (long i = 0; i < rounds; i++) {
		enum kind k = (enum kind)(rand_r(&seed) % K_NR);
		kind_gen = 60 + (uint32_t)i;
		switch (k) {
		case K_NONE: break;
		case K_ANON: map_at(PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1); break;
		case K_FILE: map_at(PROT_READ | PROT_WRITE, MAP_PRIVATE, kind_fd); break;
		case K_SHARED: map_at(PROT_READ | PROT_WRITE, MAP_SHARED, mfd); break;
		case K_PROTNONE: map_at(PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1); break;
		default: map_at(PROT_READ, MAP_PRIVATE, kind_fd); break;
		}
		if (k == K_ANON || k == K_FILE || k == K_SHARED)
			t_fill(at, LEN, kind_gen);
		int st = fork_and_wait(child_checks, (void *)(uintptr_t)k);
		T_CHECK(st == 0, "round %ld, %s mapping at the registered address: child status %d", i, kind_names[k], st);
		if (k == K_SHARED)
			T_CHECK(t_gen_of(at, LEN, NULL) == kind_gen + 1, "round %ld: the shared mapping was not shared", i);
		if (k != K_NONE)
			munmap(at, LEN);
		counts[k]++;
	}
	printf("figures: %ld forks, the registered address holding", rounds);
	for (int k = 0; k < K_NR; k++)
		printf("%s %s %u", k ? "," : "", kind_names[k], counts[k]);
	printf("\n");
	return device_case();
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		if (!strcmp(argv[1], "stack"))
			return role_stack();
		if (!strcmp(argv[1], "kinds"))
			return role_kinds();
		return role_random();
	}
	static const struct { const char *role, *line; } cases[] = {
		{ "stack", "forking thread's stack" },
		{ "kinds", "no longer mapped" },
		{ "random", "no longer mapped" },
	};
	char err[8192];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st = t_run(argv[0], cases[i].role, 1, "copy", NULL, err, sizeof(err));
		T_CHECK(st == T_COHERENT, "%s: status %d; stderr: %s", cases[i].role, st, err);
		if (cases[i].line)
			T_CHECK(t_msg_lines(err, NULL) == 1 && strstr(err, cases[i].line), "%s: want one line about \"%s\", got: %s",
				cases[i].role, cases[i].line, err);
		t_note("%s: fine%s%s", cases[i].role, *err ? "; said: " : "", err);
		T_CHECK(t_expect(argv[0], cases[i].role, 1, "off", T_STALE) == 0, "%s: control", cases[i].role);
		T_CHECK(t_expect(argv[0], cases[i].role, 0, NULL, T_STALE) == 0, "%s: control", cases[i].role);
	}
	t_pass("freed and reused registered ranges: no crash, the child sees what the new mapping holds");
}
