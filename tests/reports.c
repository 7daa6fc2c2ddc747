/*
 * reports: once-per-call-site reports of forks while ranges are registered.
 *
 * A system() three calls deep in a shared library (tests/libdeep.c), called
 * three times, is reported once, its chain naming the library's functions
 * deepest first, in text and in JSON (parsed by python3 when there is one);
 * a fork() at another site gets its own report.  Copy mode prints nothing
 * unless asked (SAFEFORK_REPORT=1); a fork whose protection degraded is
 * reported unasked; SAFEFORK_LOG=<path with %p>; SAFEFORK_LOG=syslog,
 * received on a socket bound at /dev/log in a private mount namespace.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#include "safefork.h"

int deep_outer(const char *cmd);
int deep_fork_outer(void);

#define LEN (16 * 4096ul)

/* Three system() calls from one site and two fork() from another, both three calls deep in libdeep. */
static int role_sites(void)
{
	char *buf = t_map(LEN);

	fprintf(stderr, "role pid %d\n", (int)getpid());
	memset(buf, 1, LEN);
	T_CHECK(t_register(buf, LEN, 0) == 0, "register");
	int fds = t_fd_count();
	for (volatile int i = 0; i < 3; i++)
		T_CHECK(deep_outer("true") == 0, "system(\"true\") failed");
	for (volatile int i = 0; i < 2; i++)
		T_CHECK(deep_fork_outer() == 0, "fork helper failed");
	T_CHECK(t_fd_count() == fds, "a descriptor was left open: %d -> %d", fds, t_fd_count());
	struct safefork_stats st;
	if (t_lib_active() && t_stats(&st) == 0)
		T_CHECK(st.forks[SAFEFORK_ENTRY_SYSTEM] == 3 && st.forks[SAFEFORK_ENTRY_FORK] == 2,
			"counted %llu system() and %llu fork(), want 3 and 2", st.forks[SAFEFORK_ENTRY_SYSTEM],
			st.forks[SAFEFORK_ENTRY_FORK]);
	/* copy mode: each child put its copy back and added the time to our counters before it went on */
	const char *mode = getenv("SAFEFORK_MODE");
	if (t_lib_active() && mode && !strcmp(mode, "copy"))
		T_CHECK(t_stats(&st) == 0 && st.child_ns > 0 && st.bytes_copied >= 2 * LEN,
			"copy mode: child_ns %llu, bytes_copied %llu after 2 protected forks", st.child_ns,
			st.bytes_copied);
	return 0;
}

/* Part of the registered range unmapped: the protection degrades (copy mode), twice from one site. */
static int role_fallback(void)
{
	char *buf = t_map(LEN);

	memset(buf, 1, LEN);
	T_CHECK(t_register(buf, LEN, 0) == 0, "register");
	T_CHECK(munmap(buf + LEN / 2, LEN / 2) == 0, "munmap");
	for (volatile int i = 0; i < 2; i++)
		T_CHECK(deep_fork_outer() == 0, "fork helper failed");
	return 0;
}

/* One fork, nothing else (no exec: no other process reads the environment). */
static int role_one_fork(void)
{
	char *buf = t_map(LEN);

	memset(buf, 1, LEN);
	T_CHECK(t_register(buf, LEN, 0) == 0, "register");
	T_CHECK(deep_fork_outer() == 0, "fork helper failed");
	return 0;
}

/* ---- reading reports ---- */

static int role_pid(const char *err)
{
	const char *p = strstr(err, "role pid ");
	return p ? atoi(p + 9) : -1;
}

/* Headlines: lines "safefork: X" that are not frames ("safefork:   #n ..."). */
static int headlines(const char *err, const char *needle)
{
	int n = 0;
	for (const char *l = err; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);
		if (len < 10 || strncmp(l, "safefork: ", 10) || !strncmp(l, "safefork:   ", 12))
			continue;
		if (!needle || memmem(l, len, needle, strlen(needle)))
			n++;
	}
	return n;
}

/*
 * In the report whose headline contains needle: does frame #i name sym in
 * an object whose path contains obj?  And is the headline's pid this one?
 */
static int frame_is(const char *err, const char *needle, int i, const char *sym, const char *obj, int pid)
{
	const char *h = strstr(err, needle);
	char want[64], pidtxt[32];

	if (!h)
		return 0;
	while (h > err && h[-1] != '\n')
		h--;
	const char *end = strchr(h, '\n');
	snprintf(pidtxt, sizeof(pidtxt), "in pid %d via", pid);
	if (!end || !memmem(h, (size_t)(end - h), pidtxt, strlen(pidtxt)))
		return 0;
	snprintf(want, sizeof(want), "safefork:   #%d ", i);
	for (const char *l = end + 1; !strncmp(l, "safefork:   #", 13); l = strchr(l, '\n') + 1) {
		const char *nl = strchr(l, '\n');
		if (!nl)
			return 0;
		if (strncmp(l, want, strlen(want)))
			continue;
		char s[64];
		snprintf(s, sizeof(s), " %s+", sym);
		size_t len = (size_t)(nl - l);
		return memmem(l, len, s, strlen(s)) && memmem(l, len, obj, strlen(obj));
	}
	return 0;
}

/* The library's two reports of role "sites", in text; mode is "log" or "copy". */
static void check_sites_text(const char *err, const char *mode)
{
	int pid = role_pid(err);
	char fork_head[64];

	snprintf(fork_head, sizeof(fork_head), "%s in pid %d via fork (mode %s)",
		 !strcmp(mode, "log") ? "unsafe fork" : "fork", pid, mode);
	T_CHECK(pid > 0, "no pid line from the role: %s", err);
	T_CHECK(headlines(err, NULL) == 2 && headlines(err, " via system (mode ") == 1 &&
		headlines(err, fork_head) == 1, "[%s] want one report for the 3 system() calls and one for the 2 "
		"fork() calls (\"%s\"), got:\n%s", mode, fork_head, err);
	if (strstr(err, "safefork:   (the immediate caller only")) { /* built without libunwind */
		T_CHECK(frame_is(err, " via system (mode ", 0, "deep_inner", "libdeep", pid) &&
			frame_is(err, fork_head, 0, "deep_fork_inner", "libdeep", pid),
			"[%s] the reports do not name their callers deep_inner, deep_fork_inner:\n%s", mode, err);
		t_note("[%s] the library names the immediate caller only", mode);
		return;
	}
	T_CHECK(frame_is(err, " via system (mode ", 0, "deep_inner", "libdeep", pid) &&
		frame_is(err, " via system (mode ", 1, "deep_middle", "libdeep", pid) &&
		frame_is(err, " via system (mode ", 2, "deep_outer", "libdeep", pid),
		"[%s] the system() report does not name deep_inner, deep_middle, deep_outer (libdeep), deepest first:\n%s",
		mode, err);
	T_CHECK(frame_is(err, fork_head, 0, "deep_fork_inner", "libdeep", pid) &&
		frame_is(err, fork_head, 2, "deep_fork_outer", "libdeep", pid),
		"[%s] the fork() report does not name deep_fork_inner ... deep_fork_outer:\n%s", mode, err);
}

/* Every line of the role's stderr but its pid line is a JSON object; python3 parses them when present. */
static void check_sites_json(const char *err)
{
	int pid = role_pid(err), objects = 0;

	T_CHECK(pid > 0, "no pid line from the role: %s", err);
	for (const char *l = err; *l; l = strchr(l, '\n') + 1) {
		const char *nl = strchr(l, '\n');
		T_CHECK(nl, "output does not end in a newline: %s", err);
		if (!strncmp(l, "role pid ", 9))
			continue;
		T_CHECK(l[0] == '{' && nl[-1] == '}', "not one JSON object per line: %.*s", (int)(nl - l), l);
		objects++;
	}
	T_CHECK(objects == 2, "want 2 JSON reports, got %d:\n%s", objects, err);
	if (system("command -v python3 >/dev/null 2>&1") != 0) {
		t_note("python3 not found: JSON not parsed (only its line structure checked)");
		return;
	}
	char data[64], script[64];
	snprintf(data, sizeof(data), "/tmp/safefork-reports-%d.json", (int)getpid());
	snprintf(script, sizeof(script), "/tmp/safefork-reports-%d.py", (int)getpid());
	FILE *f = fopen(data, "w");
	T_CHECK(f && fputs(err, f) >= 0 && fclose(f) == 0, "write %s", data);
	f = fopen(script, "w");
	T_CHECK(f, "write %s", script);
	fputs("import json, sys\n"
	      "pid, objs = None, []\n"
	      "for line in open(sys.argv[1]):\n"
	      "    if line.startswith('role pid '):\n"
	      "        pid = int(line[9:])\n"
	      "    else:\n"
	      "        objs.append(json.loads(line))\n"
	      "fields = ['event', 'time', 'pid', 'program', 'entry', 'mode', 'verdict', 'fallback', 'ranges',\n"
	      "          'bytes', 'unsafe_ranges', 'unsafe_bytes', 'logged_ranges', 'logged_bytes',\n"
	      "          'protected_ranges', 'protected_bytes', 'kernel_ranges', 'kernel_bytes', 'bytes_copied',\n"
	      "          'kernel', 'libc', 'unwinder', 'summary', 'backtrace']\n"
	      "for o in objs:\n"
	      "    missing = [k for k in fields if k not in o]\n"
	      "    assert not missing, 'missing fields %s in %s' % (missing, o)\n"
	      "    assert o['pid'] == pid and o['mode'] == 'log' and o['ranges'] == 1 and o['bytes'] == 65536, o\n"
	      "    assert all(k in o['kernel'] for k in ('release', 'early_cow', 'hugetlb_early_cow', "
	      "'reliable_pins', 'how')), o['kernel']\n"
	      "    assert all(set(f) == {'ip', 'symbol', 'offset', 'object'} for f in o['backtrace']), o\n"
	      "s = [o for o in objs if o['entry'] == 'system']\n"
	      "k = [o for o in objs if o['entry'] == 'fork']\n"
	      "assert len(s) == 1 and len(k) == 1, objs\n"
	      "n = 3 if s[0]['unwinder'] == 'libunwind' else 1\n"
	      "syms = [f['symbol'] for f in s[0]['backtrace']]\n"
	      "assert syms[:n] == ['deep_inner', 'deep_middle', 'deep_outer'][:n], syms\n"
	      "assert all('libdeep' in f['object'] for f in s[0]['backtrace'][:n]), s[0]['backtrace']\n"
	      "assert s[0]['event'] == 'spawn' or s[0]['verdict'] == 'unsafe', s[0]\n"
	      "assert k[0]['event'] == 'fork' and k[0]['verdict'] == 'unsafe' and k[0]['unsafe_ranges'] == 1, k[0]\n"
	      "assert [f['symbol'] for f in k[0]['backtrace']][:n] == ['deep_fork_inner', 'deep_fork_middle', "
	      "'deep_fork_outer'][:n], k[0]['backtrace']\n",
	      f);
	T_CHECK(fclose(f) == 0, "write %s", script);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "python3 %s %s", script, data);
	int st = system(cmd);
	unlink(script);
	unlink(data);
	T_CHECK(st == 0, "the JSON reports do not parse or lack what they must say (python3 said so above):\n%s", err);
}

/* ---- syslog: a socket at /dev/log in a mount namespace of our own ---- */

static int sock = -1;
static volatile int receiving = 1;
static char got[32768];
static size_t ngot;

/* Drain the socket while the role writes (a datagram queue holds few messages). */
static void *receiver(void *arg)
{
	(void)arg;
	while (receiving) {
		char d[4096];
		ssize_t n = recv(sock, d, sizeof(d) - 1, 0);
		if (n > 0 && ngot + (size_t)n + 2 < sizeof(got)) {
			memcpy(got + ngot, d, (size_t)n);
			ngot += (size_t)n;
			got[ngot++] = '\n';
			got[ngot] = '\0';
		}
	}
	return NULL;
}

static int syslog_in_namespace(const char *self)
{
	if (unshare(CLONE_NEWNS) != 0) {
		printf("SKIP-REASON: unshare(CLONE_NEWNS): %s\n", strerror(errno));
		return T_SKIP;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", "/dev", "tmpfs", 0, "size=64k,mode=755") != 0) {
		printf("SKIP-REASON: cannot mount a private /dev: %s\n", strerror(errno));
		return T_SKIP;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
	struct timeval tv = { 0, 100000 };
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	T_CHECK(sock >= 0 && bind(sock, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0, "socket at /dev/log: %s",
		strerror(errno));
	pthread_t t;
	T_CHECK(pthread_create(&t, NULL, receiver, NULL) == 0, "receiver thread");
	char err[8192];
	int st = t_run(self, "sites", 1, "log", "SAFEFORK_LOG=syslog", err, sizeof(err));
	usleep(300000);
	receiving = 0;
	pthread_join(t, NULL);
	T_CHECK(st == 0, "syslog: role failed (%d): %s", st, err);
	int pid = role_pid(err);
	T_CHECK(headlines(err, NULL) == 0, "syslog: the reports went to stderr too:\n%s", err);
	char tag[64];
	snprintf(tag, sizeof(tag), "<12>safefork[%d]: ", pid);
	int lines = 0;
	for (const char *l = got; *l; l = strchr(l, '\n') + 1) {
		T_CHECK(!strncmp(l, tag, strlen(tag)), "syslog: a message without \"%s\": %s", tag, l);
		lines++;
	}
	/* The same content as on stderr, one message per line, without the "safefork: " prefix. */
	char text[sizeof(got) * 2];
	size_t k = snprintf(text, sizeof(text), "role pid %d\n", pid);
	for (const char *l = got; *l && k + 64 < sizeof(text); l = strchr(l, '\n') + 1) {
		const char *nl = strchr(l, '\n');
		k += snprintf(text + k, sizeof(text) - k, "safefork: %.*s\n", (int)(nl - l - strlen(tag)), l + strlen(tag));
	}
	check_sites_text(text, "log");
	t_note("syslog: %d messages on /dev/log, reports as on stderr", lines);
	return 0;
}

int main(int argc, char **argv)
{
	char err[8192];

	if (argc > 1) {
		if (!strcmp(argv[1], "sites"))
			return role_sites();
		if (!strcmp(argv[1], "fallback"))
			return role_fallback();
		if (!strcmp(argv[1], "one-fork"))
			return role_one_fork();
		return syslog_in_namespace(argv[0]);
	}
	if (!t_lib_path() || access(t_lib_path(), R_OK) != 0)
		t_skip("the library is not built (SAFEFORK_LIB)");

	/* Control: without the library the role runs, and nothing speaks. */
	int st = t_run(argv[0], "sites", 0, NULL, NULL, err, sizeof(err));
	T_CHECK(st == 0 && !strstr(err, "safefork:"), "without the library: status %d, stderr %s", st, err);

	/* Log mode: once per call site, the library's functions named, deepest first. */
	st = t_run(argv[0], "sites", 1, "log", NULL, err, sizeof(err));
	T_CHECK(st == 0, "log: role failed (%d): %s", st, err);
	check_sites_text(err, "log");
	t_note("log mode, text:\n%s", err);

	st = t_run(argv[0], "sites", 1, "log", "SAFEFORK_LOG_FORMAT=json", err, sizeof(err));
	T_CHECK(st == 0, "json: role failed (%d): %s", st, err);
	check_sites_json(err);

	/* Protective mode: silent unless asked. */
	st = t_run(argv[0], "sites", 1, "copy", NULL, err, sizeof(err));
	T_CHECK(st == 0 && !strstr(err, "safefork:"), "copy mode, not asked: status %d, want silence: %s", st, err);
	st = t_run(argv[0], "sites", 1, "copy", "SAFEFORK_REPORT=1", err, sizeof(err));
	T_CHECK(st == 0, "copy + SAFEFORK_REPORT=1: role failed (%d): %s", st, err);
	check_sites_text(err, "copy");

	/* A degraded protection is reported unasked, once for its site, naming at least its caller. */
	st = t_run(argv[0], "fallback", 1, "copy", NULL, err, sizeof(err));
	T_CHECK(st == 0, "fallback: role failed (%d): %s", st, err);
	T_CHECK(headlines(err, "no longer mapped") == 1 && headlines(err, "safefork: degraded fork in pid ") == 1 &&
		headlines(err, NULL) == 2 && strstr(err, "#0 ") && strstr(strstr(err, "#0 "), " deep_fork_inner+"),
		"fallback: want its line and one report naming deep_fork_inner, got:\n%s", err);

	/* SAFEFORK_LOG=<path>: %p is the pid; nothing on stderr. */
	char prefix[64], env[256];
	snprintf(prefix, sizeof(prefix), "safefork-reports-%d-", (int)getpid());
	snprintf(env, sizeof(env), "SAFEFORK_LOG=/tmp/%s%%p.log", prefix);
	st = t_run(argv[0], "sites", 1, "log", env, err, sizeof(err));
	T_CHECK(st == 0 && !strstr(err, "safefork:"), "path: status %d, stderr must hold no report: %s", st, err);
	int pid = role_pid(err), files = 0;
	DIR *d = opendir("/tmp");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		char path[512], text[8192] = "";
		snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
		text[n] = '\0';
		if (f)
			fclose(f);
		unlink(path);
		files++;
		T_CHECK(atoi(e->d_name + strlen(prefix)) == pid, "path: %s is not named after pid %d", e->d_name, pid);
		char with_pid[8300];
		snprintf(with_pid, sizeof(with_pid), "role pid %d\n%s", pid, text);
		check_sites_text(with_pid, "log");
	}
	if (d)
		closedir(d);
	T_CHECK(files == 1, "path: want one /tmp/%s<pid>.log, found %d", prefix, files);

	/* Bad values: one line, then text on stderr. */
	st = t_run(argv[0], "one-fork", 1, "copy", "SAFEFORK_LOG_FORMAT=xml", err, sizeof(err));
	T_CHECK(st == 0 && headlines(err, NULL) == 1 &&
		headlines(err, "safefork: SAFEFORK_LOG_FORMAT=xml is not text or json; using text") == 1,
		"SAFEFORK_LOG_FORMAT=xml: want one line saying so: %s", err);
	st = t_run(argv[0], "one-fork", 1, "copy", "SAFEFORK_REPORT=yes", err, sizeof(err));
	T_CHECK(st == 0 && headlines(err, NULL) == 1 && headlines(err, "safefork: SAFEFORK_REPORT=yes is not 0 or 1") == 1,
		"SAFEFORK_REPORT=yes: want one line saying so: %s", err);
	snprintf(env, sizeof(env), "SAFEFORK_LOG=/nonexistent-safefork-%d/r.log", (int)getpid());
	st = t_run(argv[0], "one-fork", 1, "copy", env, err, sizeof(err));
	T_CHECK(st == 0 && headlines(err, NULL) == 2 && headlines(err, "cannot open the file") == 1 &&
		headlines(err, "safefork: fork in pid ") == 1, "%s: want one line, then the report on stderr: %s", env, err);
	if (access("/dev/log", F_OK) != 0) {
		st = t_run(argv[0], "one-fork", 1, "copy", "SAFEFORK_LOG=syslog", err, sizeof(err));
		T_CHECK(st == 0 && headlines(err, NULL) == 2 && headlines(err, "cannot reach /dev/log") == 1 &&
			headlines(err, "safefork: fork in pid ") == 1,
			"SAFEFORK_LOG=syslog without /dev/log: want one line, then the report on stderr: %s", err);
	}

	/* syslog, in a child of ours with its own mount namespace */
	fflush(stdout);
	pid_t ns = fork();
	if (ns == 0) {
		char *args[] = { argv[0], "syslog-ns", NULL };
		execv("/proc/self/exe", args);
		_exit(127);
	}
	st = t_wait(ns);
	if (st == T_SKIP)
		t_note("syslog not tested (see the reason above)");
	else
		T_CHECK(st == 0, "syslog: status %d", st);
	t_pass("one report per call site (3 system() and 2 fork() three calls deep in libdeep: 2 reports naming "
	       "its functions), text, JSON, path%s; copy mode silent unless asked; a fallback reported unasked",
	       st == 0 ? ", syslog" : "");
}
