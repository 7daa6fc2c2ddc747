/*
 * generations: 200 back-to-back forks, new content before each, children
 * left running while the next fork happens.  Every child must find exactly
 * its own generation (never another fork's snapshot, never a torn one) and
 * no staging mapping left in its /proc/self/maps; then the device check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"

#define FORKS 200
#define LEN (64 * 4096ul)

static struct t_map_ent before[512], now[512];
static int nbefore;

/* Every mapping the child has lies in one the parent had before its first fork: no staging, no scratch. */
static int child_maps_clean(int g)
{
	int n = t_maps_read(now, 512);
	for (int i = 0; i < n; i++) {
		int found = 0;
		for (int j = 0; j < nbefore && !found; j++)
			found = now[i].start >= before[j].start && now[i].end <= before[j].end;
		if (!found) {
			printf("child %d: mapping not in the parent before any fork: %s", g, now[i].line);
			fflush(stdout);
			return 0;
		}
	}
	return 1;
}

/* A 2 MiB-aligned mapping, a multiple of 2 MiB long, that did not exist before: the staging pool. */
static int staging_seen(void)
{
	int n = t_maps_read(now, 512);
	for (int i = 0; i < n; i++) {
		int old = 0;
		for (int j = 0; j < nbefore && !old; j++)
			old = now[i].start == before[j].start && now[i].end == before[j].end;
		if (!old && now[i].start % (2u << 20) == 0 && (now[i].end - now[i].start) % (2u << 20) == 0)
			return 1;
	}
	return 0;
}

static int role(void)
{
	char *buf = t_map(LEN);
	pid_t kids[FORKS];
	const char *mode = getenv("SAFEFORK_MODE");
	int lib = t_lib_loaded() && !(mode && !strcmp(mode, "off")), named = 0;

	t_fill(buf, LEN, 1);
	/* before registering: the library maps its table, and in auto mode probes the kernel, on the first one */
	nbefore = t_maps_read(before, 512);
	T_CHECK(t_register(buf, LEN, 0) == 0, "register");
	for (int g = 0; g < FORKS; g++) {
		t_fill(buf, LEN, 1000 + (uint32_t)g);
		kids[g] = fork();
		if (kids[g] == 0) {
			size_t bad = 0;
			long got = t_gen_of(buf, LEN, &bad);
			if (got != 1000 + g) {
				printf("child %d: generation %ld (bad at +%zu)\n", g, got, bad);
				fflush(stdout);
				_exit(2);
			}
			/* (with the library off the child keeps the library's table: a pass-through changes nothing) */
			if (lib && !child_maps_clean(g))
				_exit(3);
			usleep((useconds_t)(g % 7) * 300); /* overlap with the next forks */
			_exit(0);
		}
		T_CHECK(kids[g] > 0, "fork %d", g);
		named |= staging_seen(); /* the staging exists in the parent */
	}
	for (int g = 0; g < FORKS; g++)
		T_CHECK(t_wait(kids[g]) == 0, "child %d failed", g);
	T_CHECK(!lib || named, "no staging mapping ever appeared in the parent: the children's check proves nothing");
	t_note("%d children each saw their own generation and no staging", FORKS);
	T_CHECK(t_unregister(buf, LEN) == 0, "unregister");

	struct t_case c = { .reg = buf, .reg_len = LEN, .register_it = 1 };
	return t_case_run(&c);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return role();
	return t_protect_and_control(argv[0], "200-generations");
}
