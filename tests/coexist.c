/*
 * coexist: memory the program marked itself with MADV_WIPEONFORK (an RNG
 * state, say) or MADV_DONTFORK keeps exactly that advice across forks,
 * registered or not, in copy and dontfork modes: the library undoes only
 * its own advice and never fills what the program wants wiped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "harness.h"

#define P 4096ul
#define LEN (16 * P)

/* 'd' fork-time data, 'z' zeros, 'a' absent, '?' other, for 4 pages at p */
static char view(const char *p)
{
	unsigned char v;
	if (mincore((void *)p, P, &v) < 0 && errno == ENOMEM)
		return 'a';
	if (t_gen_of(p, 4 * P, NULL) == 1)
		return 'd';
	for (size_t i = 0; i < 4 * P; i++)
		if (p[i])
			return '?';
	return 'z';
}

static void check_flags(const char *buf, const char *when)
{
	T_CHECK(t_vmflag(buf + 4 * P, "wf") == 1, "%s: the program's WIPEONFORK is gone", when);
	T_CHECK(t_vmflag(buf + 8 * P, "dc") == 1, "%s: the program's DONTFORK is gone", when);
	T_CHECK(t_vmflag(buf, "wf") == 0 && t_vmflag(buf, "dc") == 0, "%s: the library's advice was left behind", when);
}

static int role(const char *mode)
{
	char *raw = t_map(LEN + 2 * P), *buf = raw + P;
	munmap(raw, P); /* a mapping of its own */
	munmap(raw + P + LEN, P);
	/* pages 0-3 and 12-15 plain, 4-7 wiped by the program, 8-11 kept from children by the program */
	T_CHECK(madvise(buf + 4 * P, 4 * P, MADV_WIPEONFORK) == 0, "program's MADV_WIPEONFORK");
	T_CHECK(madvise(buf + 8 * P, 4 * P, MADV_DONTFORK) == 0, "program's MADV_DONTFORK");
	t_fill(buf, LEN, 1);
	for (int i = 0; i < 4; i++)
		t_fill(buf + (size_t)i * 4 * P, 4 * P, 1);
	T_CHECK(t_register(buf, LEN, 0) == 0, "register");
	check_flags(buf, "before any fork");
	for (int round = 0; round < 2; round++) {
		int fds[2];
		T_CHECK(pipe(fds) == 0, "pipe");
		pid_t pid = fork();
		if (pid == 0) {
			char v[4];
			for (int i = 0; i < 4; i++)
				v[i] = view(buf + (size_t)i * 4 * P);
			_exit(write(fds[1], v, 4) == 4 ? 0 : 1);
		}
		char v[5] = { 0 };
		T_CHECK(read(fds[0], v, 4) == 4 && t_wait(pid) == 0, "child");
		close(fds[0]);
		close(fds[1]);
		/* plain pages: data (copy) or absent (dontfork); the program's own advice as it asked */
		/* (in dontfork mode every registered page is kept from the child, the wiped ones too) */
		const char *want = !strcmp(mode, "dontfork") ? "aaaa" : "dzad";
		T_CHECK(!strcmp(v, want), "fork %d: child saw %s, want %s (plain, program-wiped, program-dontfork, plain)",
			round, v, want);
		check_flags(buf, round ? "after the second fork" : "after the first fork");
	}
	t_note("%s: program advice kept, child saw the expected pages", mode);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return role(getenv("SAFEFORK_MODE") ? getenv("SAFEFORK_MODE") : "none");
	T_CHECK(t_run(argv[0], "role", 1, "copy", NULL, NULL, 0) == 0, "copy mode");
	T_CHECK(t_run(argv[0], "role", 1, "dontfork", NULL, NULL, 0) == 0, "dontfork mode");
	T_CHECK(t_run(argv[0], "role", 1, "off", NULL, NULL, 0) == 0, "off");
	T_CHECK(t_run(argv[0], "role", 0, NULL, NULL, NULL, 0) == 0, "without the library");
	t_pass("the program's own fork advice survives the library's");
}
