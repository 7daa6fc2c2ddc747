/*
 * fork-libc-paths: forks the C library makes with its hidden __fork, which
 * a fork() wrapper never sees: forkpty (both symbol versions), daemon, and
 * the atfork safety net proved on a path with no wrapper at all (libc's own
 * forkpty called through a pointer taken from libc itself).  Each is
 * protected, with its controls, and counted under its own entry point.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"
#include "safefork.h"

/* forkpty@GLIBC_2.2.5: what binaries built against libutil call. */
pid_t old_forkpty(int *, char *, const struct termios *, const struct winsize *);
__asm__(".symver old_forkpty, forkpty@GLIBC_2.2.5");

static int master = -1;

static pid_t via_forkpty(void)
{
	return forkpty(&master, NULL, NULL, NULL);
}

static pid_t via_forkpty_compat(void)
{
	return old_forkpty(&master, NULL, NULL, NULL);
}

/* libc's forkpty itself, past any wrapper: only the atfork net can see this fork. */
static pid_t via_libc_directly(void)
{
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	pid_t (*f)(int *, char *, const struct termios *, const struct winsize *) =
		libc ? (pid_t(*)(int *, char *, const struct termios *, const struct winsize *))dlvsym(libc, "forkpty",
												 "GLIBC_2.34")
		     : NULL;
	if (!f)
		t_skip("this C library has no forkpty@GLIBC_2.34");
	return f(&master, NULL, NULL, NULL);
}

/*
 * daemon(): the parent _exit()s inside it, so the parent's side of the
 * scenario runs in an atfork parent handler (ours run first, so the memory
 * is already back to normal there): write generation 2 while the daemon
 * child still maps the pages, read the device, send the verdict.  The daemon
 * child checks it got the fork-time data and stays until the parent is done.
 */
static struct {
	char *buf;
	size_t len;
	struct t_device dev;
	uint64_t pfn0;
	int verdict[2], done[2];
} D;

static void daemon_parent_side(void)
{
	char v = 0, *seen = malloc(D.len);

	t_fill(D.buf, D.len, 2);
	t_dev_read(&D.dev, seen);
	long g = t_gen_of(seen, D.len, NULL);
	int same = !t_can_see_pfns() || t_pfn(D.buf) == D.pfn0;
	v = g == 2 && same ? T_COHERENT : (g == 1 || g == 3) && !same ? T_STALE : 99;
	free(seen);
	if (write(D.verdict[1], &v, 1) != 1 || write(D.done[1], "d", 1) != 1)
		_exit(98);
}

static int role_daemon(void)
{
	char v = 0, child = 0;

	D.len = 8 * 4096;
	D.buf = t_map(D.len);
	T_CHECK(pipe(D.verdict) == 0 && pipe(D.done) == 0, "pipe");
	pid_t mid = fork(); /* nothing registered yet: a plain fork, so that daemon's exiting parent is not us */
	T_CHECK(mid >= 0, "fork");
	if (mid == 0) {
		t_fill(D.buf, D.len, 1);
		T_CHECK(t_register(D.buf, D.len, 0) == 0, "register");
		D.pfn0 = t_pfn(D.buf);
		t_dev_attach(&D.dev, D.buf, D.len);
		pthread_atfork(NULL, daemon_parent_side, NULL);
		if (daemon(1, 1) < 0)
			_exit(97);
		/* the daemon child */
		char c = t_gen_of(D.buf, D.len, NULL) == 1 ? 'k' : 'b';
		char x;
		if (read(D.done[0], &x, 1) != 1) /* keep the pages mapped until the parent has looked */
			c = 'h';
		if (write(D.verdict[1], &c, 1) != 1)
			_exit(96);
		_exit(0);
	}
	close(D.verdict[1]);
	T_CHECK(t_wait(mid) == 0, "daemon's parent did not exit 0");
	T_CHECK(read(D.verdict[0], &v, 1) == 1, "no verdict from daemon's parent");
	T_CHECK(read(D.verdict[0], &child, 1) == 1, "no word from the daemon child");
	T_CHECK(child == 'k', "the daemon child did not see the fork-time data (%c)", child);
	T_CHECK(v == T_COHERENT || v == T_STALE, "inconsistent device/PFN verdict %d", v);
	t_note("daemon: device %s", v == T_COHERENT ? "coherent" : "STALE");
	return v;
}

int main(int argc, char **argv)
{
	static struct t_case c;
	struct safefork_stats st;

	if (argc > 1) {
		size_t len = 8 * 4096;
		enum safefork_entry want = SAFEFORK_ENTRY_FORKPTY;
		if (!strcmp(argv[1], "daemon"))
			return role_daemon();
		c = (struct t_case){ .reg = t_map(len), .reg_len = len, .register_it = 1 };
		if (!strcmp(argv[1], "forkpty"))
			c.do_fork = via_forkpty;
		else if (!strcmp(argv[1], "forkpty@GLIBC_2.2.5"))
			c.do_fork = via_forkpty_compat;
		else {
			c.do_fork = via_libc_directly;
			want = SAFEFORK_ENTRY_INTERNAL;
		}
		int v = t_case_run(&c);
		if (t_lib_active() && t_stats(&st) == 0)
			T_CHECK(st.forks[want] == 1 && st.forks[SAFEFORK_ENTRY_FORK] == 0,
				"counted under the wrong entry point (wanted %d)", (int)want);
		return v;
	}
	int bad = 0;
	bad |= t_protect_and_control(argv[0], "forkpty");
	bad |= t_protect_and_control(argv[0], "forkpty@GLIBC_2.2.5");
	bad |= t_protect_and_control(argv[0], "libc-forkpty-unwrapped");
	bad |= t_protect_and_control(argv[0], "daemon");
	if (bad)
		return T_FAIL;
	t_pass("forkpty (both versions), daemon and the atfork net on an unwrapped path: protected");
}
