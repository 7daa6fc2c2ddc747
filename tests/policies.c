/*
 * policies: dontfork (the child has no such pages), wipe (the child sees
 * zeros), log (nothing changes; one report per call site), per-range flags
 * overriding the process mode, and safefork_set_mode() at run time.  Each
 * protective policy keeps the device coherent; each is checked against the
 * corruption of the same run without protection.
 */
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "harness.h"
#include "safefork.h"

#define LEN (8 * 4096ul)

/* What the child finds in the range: 'd' data as of the fork, 'z' zeros, 'a' absent. */
static char child_view(const char *buf)
{
	unsigned char v;
	if (mincore((void *)buf, 4096, &v) < 0 && errno == ENOMEM)
		return 'a';
	if (t_gen_of(buf, LEN, NULL) == 1)
		return 'd';
	for (size_t i = 0; i < LEN; i++)
		if (buf[i])
			return '?';
	return 'z';
}

/* Fork with the device attached; returns what the child saw, and the device verdict in *coherent. */
static char scenario(char *buf, int *coherent)
{
	struct t_device dev;
	int fds[2];
	char seen = '?';

	t_fill(buf, LEN, 1);
	t_dev_attach(&dev, buf, LEN);
	T_CHECK(pipe(fds) == 0, "pipe");
	pid_t pid = fork();
	if (pid == 0) {
		char c = child_view(buf);
		_exit(write(fds[1], &c, 1) == 1 ? 0 : 1);
	}
	T_CHECK(read(fds[0], &seen, 1) == 1, "child report");
	t_fill(buf, LEN, 2);
	T_CHECK(t_wait(pid) == 0, "child");
	close(fds[0]);
	close(fds[1]);
	char *out = malloc(LEN);
	t_dev_read(&dev, out);
	t_dev_close(&dev);
	*coherent = t_gen_of(out, LEN, NULL) == 2;
	free(out);
	return seen;
}

static void expect(const char *what, char *buf, char want_child, int want_coherent)
{
	int coherent;
	char seen = scenario(buf, &coherent);
	/* AddressSanitizer's runtime may map memory of its own into a hole the child inherited */
	if (want_child == 'a' && seen == 'z' && t_sanitized())
		seen = 'a';
	T_CHECK(seen == want_child && coherent == want_coherent, "%s: child saw '%c' (want '%c'), device %s (want %s)",
		what, seen, want_child, coherent ? "coherent" : "STALE", want_coherent ? "coherent" : "STALE");
	t_note("%s: child '%c', device %s", what, seen, coherent ? "coherent" : "STALE");
}

static int role_mode(const char *mode)
{
	char *buf = t_map(LEN);
	T_CHECK(t_register(buf, LEN, 0) == 0, "register");
	if (!strcmp(mode, "dontfork"))
		expect("dontfork", buf, 'a', 1);
	else if (!strcmp(mode, "wipe"))
		expect("wipe", buf, 'z', 1);
	else if (!strcmp(mode, "copy"))
		expect("copy", buf, 'd', 1);
	else /* log, off, no library */
		expect(mode, buf, 'd', 0);
	/* grandchildren: the child's own forks are ordinary (the advice is not inherited) */
	pid_t pid = fork();
	if (pid == 0) {
		memset(buf, 7, 4096);
		pid_t g = fork();
		if (g == 0)
			_exit(buf[0] == 7 ? 0 : 1);
		_exit(t_wait(g));
	}
	int st = t_wait(pid);
	if (!strcmp(mode, "dontfork")) /* (AddressSanitizer catches the fault itself and exits 1) */
		T_CHECK(st == -SIGSEGV || (t_sanitized() && st == 1), "a dontfork child touching the range must fault");
	else
		T_CHECK(st == 0, "grandchild did not see its parent's data");
	return 0;
}

static int role_flags(void)
{
	char *a = t_map(LEN), *b = t_map(LEN), *c = t_map(LEN), *d = t_map(LEN);
	T_CHECK(safefork_register(a, LEN, SAFEFORK_DONTFORK) == 0, "register dontfork");
	T_CHECK(safefork_register(b, LEN, SAFEFORK_WIPE) == 0, "register wipe");
	T_CHECK(safefork_register(c, LEN, SAFEFORK_LOGONLY) == 0, "register logonly");
	T_CHECK(safefork_register(d, LEN, SAFEFORK_COPY) == 0, "register copy");
	expect("flag DONTFORK", a, 'a', 1);
	expect("flag WIPE", b, 'z', 1);
	expect("flag LOGONLY", c, 'd', 0);
	expect("flag COPY", d, 'd', 1);
	/* the process-wide mode changes at run time; the flags still win except for off */
	T_CHECK(safefork_set_mode(SAFEFORK_MODE_OFF) == 0, "set off");
	expect("set_mode(off), flag COPY", d, 'd', 0);
	T_CHECK(safefork_set_mode(SAFEFORK_MODE_LOG) == 0, "set log");
	expect("set_mode(log), flag COPY", d, 'd', 1);
	T_CHECK(safefork_unregister(d, LEN) == 0 && safefork_register(d, LEN, 0) == 0, "re-register");
	expect("set_mode(log), no flag", d, 'd', 0);
	T_CHECK(safefork_set_mode(SAFEFORK_MODE_WIPE) == 0, "set wipe");
	expect("set_mode(wipe), no flag", d, 'z', 1);
	return 0;
}

/* Three forks from one call site and one from another: two reports. */
__attribute__((noinline)) int role_log_sites(void);
__attribute__((noinline)) int role_log_sites(void)
{
	char *buf = t_map(LEN);
	T_CHECK(t_register(buf, LEN, 0) == 0, "register");
	for (int i = 0; i < 3; i++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		t_wait(pid);
	}
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	t_wait(pid);
	return 0;
}

static int count_lines(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

int main(int argc, char **argv)
{
	char err[8192];

	if (argc > 1) {
		if (!strcmp(argv[1], "flags"))
			return role_flags();
		if (!strcmp(argv[1], "log-sites"))
			return role_log_sites();
		return role_mode(getenv("SAFEFORK_MODE") ? getenv("SAFEFORK_MODE") : "none");
	}
	const char *modes[] = { "copy", "dontfork", "wipe", "log", "off" };
	for (int i = 0; i < 5; i++)
		T_CHECK(t_run(argv[0], "mode", 1, modes[i], NULL, NULL, 0) == 0, "mode %s", modes[i]);
	/* the flags role links the API directly: run it under the library */
	T_CHECK(t_run(argv[0], "flags", 1, "copy", NULL, NULL, 0) == 0, "per-range flags");

	T_CHECK(t_run(argv[0], "log-sites", 1, "log", NULL, err, sizeof(err)) == 0, "log role");
	int reports = count_lines(err, "safefork: unsafe fork");
	/* each report: a headline, then its frames ("safefork:   #0 ...", or a note); nothing else */
	T_CHECK(reports == 2 && count_lines(err, "\n") == reports + count_lines(err, "safefork:   "),
		"log mode: want 2 reports (2 call sites, 4 forks), got:\n%s", err);
	T_CHECK(strstr(err, "policies") && strstr(err, "role_log_sites"), "the report names the caller: %s", err);
	t_pass("every policy does what it says");
}
