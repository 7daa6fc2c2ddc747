/*
 * grandchildren: a child that forks again.  What a child inherits (the
 * choice, doc/design.md): its memory, with the registered ranges as a
 * private copy, and an EMPTY table: nothing of the child is pinned by a
 * device, so the library copies nothing at the child's own forks unless
 * the child registers ranges itself.
 *   noreg - the child attaches its own device to its copy of the parent's
 *           registered buffer and forks without registering: nothing is
 *           copied (its counters say so), its device goes stale in every
 *           configuration, and the grandchild sees the child's data.
 *   rereg - the child registers the buffer, then forks: protected
 *           (coherent) with the library, stale without it or off.
 *   chain - the same, each generation registering and forking the next,
 *           4 generations deep, STRESS_SCALE x 20 times.
 * Every child also checks that it starts with an empty table and no
 * inherited fork advice (its child sees its data, not zeros).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "stress.h"

#define LEN (16 * 4096ul)
#define DEPTH 4

static char *buf;
static int active;

static int table_empty(void)
{
	struct safefork_stats st = s_stats();
	for (int i = 0; i < SAFEFORK_SOURCE_MAX; i++)
		if (st.ranges[i])
			return 0;
	return 1;
}

/* In a child: the scenario one generation down, registering or not. */
static int generation(int level, int reg);

static int deeper(void *arg)
{
	int level = (int)(intptr_t)arg;
	if (active && !table_empty()) { /* (SAFEFORK_MODE=off changes nothing, the table included) */
		printf("generation %d: inherited a table\n", level);
		return 1;
	}
	/* A verdict as the configuration expects (the parent's role reports it further up). */
	int v = generation(level, 1);
	int want = active ? T_COHERENT : T_STALE;
	if (v != want)
		printf("generation %d: %s\n", level, v == T_STALE ? "stale" : "coherent");
	return v != want;
}

static int generation(int level, int reg)
{
	struct t_case c = { .reg = buf, .reg_len = LEN, .register_it = reg };
	if (level + 1 < DEPTH) {
		c.child_check = deeper;
		c.arg = (void *)(intptr_t)(level + 1);
	}
	return t_case_run(&c);
}

static int role_child(int reg)
{
	if (active && !table_empty())
		t_fail("the child inherited the parent's table");
	struct safefork_stats before = s_stats();
	int v = generation(1, reg);
	struct safefork_stats after = s_stats();
	if (!reg && (after.forks_protected != before.forks_protected || after.bytes_copied != before.bytes_copied))
		t_fail("the child copied something at its own fork without registering anything");
	return v;
}

static int role(const char *what)
{
	int reg = strcmp(what, "noreg") != 0;
	long rounds = strcmp(what, "chain") ? 1 : s_n(20, 2);
	int v = -1;

	active = t_lib_active();
	s_watchdog(300);
	/* a mapping of its own (gaps around it): the pages next to the main thread's static TLS, which
	 * the library leaves copy-on-write, are not part of it */
	char *raw = t_map(LEN + 2 * 4096);
	munmap(raw, 4096);
	munmap(raw + 4096 + LEN, 4096);
	buf = raw + 4096;
	for (long r = 0; r < rounds; r++) {
		t_fill(buf, LEN, 1);
		T_CHECK(t_register(buf, LEN, 0) == 0, "register");
		pid_t pid = fork();
		if (pid == 0) {
			fflush(stdout);
			_exit(role_child(reg));
		}
		T_CHECK(pid > 0, "fork: %s", strerror(errno));
		int st = t_wait(pid);
		T_CHECK(st == T_COHERENT || st == T_STALE, "round %ld: the child failed (%d)", r, st);
		T_CHECK(v < 0 || st == v, "round %ld: verdict changed", r);
		v = st;
		T_CHECK(t_unregister(buf, LEN) == 0, "unregister");
	}
	if (rounds > 1)
		printf("figures: %ld rounds of %d generations, each registering and forking the next\n", rounds, DEPTH);
	return v;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return role(argv[1]);
	int bad = 0;
	bad |= t_expect(argv[0], "noreg", 1, "copy", T_STALE);
	bad |= t_expect(argv[0], "noreg", 1, NULL, T_STALE);
	bad |= t_expect(argv[0], "noreg", 0, NULL, T_STALE);
	bad |= t_protect_and_control(argv[0], "rereg");
	bad |= t_protect_and_control(argv[0], "chain");
	if (bad)
		return T_FAIL;
	t_pass("a child starts with an empty table: its forks copy nothing until it registers, then they are "
	       "protected as the parent's, generation after generation");
}
