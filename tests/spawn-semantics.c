/*
 * spawn-semantics: system(), popen()/pclose() and posix_spawn()/posix_spawnp()
 * (the GLIBC_2.15 default and the GLIBC_2.2.5 compat versions) behave exactly
 * as glibc's own when the library is preloaded with SAFEFORK_SPAWN=shim, its
 * reimplementation that starts the child with clone(CLONE_VM|CLONE_VFORK).
 *
 * A differential test.  Each scenario is a role of this program, run twice,
 * each time in a fresh process and a fresh scratch directory (same path):
 *   (a) without the library: glibc's implementation, the control, the truth;
 *   (b) with the library preloaded and SAFEFORK_SPAWN=shim.
 * A role writes what it observes as text lines to the file named by $T_OBS
 * ("system(exit 3): 0x300 exited 3"), only what is the same from run to run:
 * process ids are written as relations ("self", "child", "caller"), never as
 * numbers.  The driver compares the two files line by line and prints the
 * first difference.  Children often run this program again as a "probe"
 * (argv[1] = "probe"): it writes down the state it was started with (argv,
 * environment, open descriptors, cwd, ids, process group and session,
 * scheduling, blocked and ignored signals) for the role to report.
 *
 * Until the shim exists, (b) runs glibc's code through the library's
 * pass-through and both runs agree; whatever semantic the shim gets wrong
 * shows up as a difference.  A few roles also check the POSIX requirement
 * itself (T_CHECK), so that a scenario observing nothing cannot pass.
 * T_KEEP=1 keeps the observation files (the path is printed).
 *
 * The shell system() and popen() start is dash, which clears the signal
 * mask it was given before any command runs.  As root, the roles that care
 * make /bin/sh this program for a moment (a private mount namespace): it
 * writes down how it was started and execs the real shell (fake_shell()).
 *
 * glibc 2.36 facts this relies on (verified by hand; the control is the truth):
 * - system() and popen() run "sh -c COMMAND": no "--", so a command starting
 *   with '-' or '+' is taken by sh as an option ("-x" fails with status 2).
 * - pclose() of a stream from fopen() just closes it and returns 0; fclose()
 *   of a stream from popen() waits for the child and returns its status.
 * - posix_spawn() leaves the internal signals 32 and 33 (SIGCANCEL,
 *   SIGSETXID) ignored in the new program unless POSIX_SPAWN_SETSIGDEF names
 *   them; on failure it reaps the child and leaves *pid untouched.
 * - the GLIBC_2.2.5 posix_spawn runs a file without "#!" as "/bin/sh FILE
 *   ARGV[1]..." (argv[0] is dropped); the GLIBC_2.15 one returns ENOEXEC.  The
 *   compat posix_spawnp passes the name as given, not the path it found, so
 *   the shell opens it relative to the cwd.  A script without "#!" found in
 *   PATH stops the search with ENOEXEC (no later PATH entry is tried).
 * - POSIX_SPAWN_SETSID|POSIX_SPAWN_SETPGROUP fails with EPERM (setsid first).
 * - pclose() takes a stream off popen()'s list before closing its
 *   descriptor: a child another thread spawns in between may inherit it.
 * - sigaction() reports SA_RESTORER for dispositions glibc set, so one that
 *   system() restored shows it where the original (never set) did not.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"

extern char **environ;

#if defined(__x86_64__) && !defined(__ILP32__) && defined(__GLIBC__)
/* The compat versions (objdump -T libc.so.6: posix_spawn@GLIBC_2.2.5, the default @@GLIBC_2.15). */
#define HAVE_COMPAT_SPAWN 1
typedef int spawn_fn_t(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
		       char *const[], char *const[]);
spawn_fn_t old_posix_spawn, old_posix_spawnp;
__asm__(".symver old_posix_spawn, posix_spawn@GLIBC_2.2.5");
__asm__(".symver old_posix_spawnp, posix_spawnp@GLIBC_2.2.5");
static spawn_fn_t *compat_spawn = old_posix_spawn, *compat_spawnp = old_posix_spawnp;

/*
 * Under AddressSanitizer those references bind to its interceptors (they
 * have the base version, which satisfies any), which call the default
 * version: then take the compat ones from the library's own handle (the
 * preloaded library's, else libc's) as the dynamic linker would have.
 */
static void compat_resolve(void)
{
	if (!t_sanitized())
		return;
	void *h = dlopen(t_lib_loaded() ? t_lib_path() : "libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	T_CHECK(h, "dlopen: %s", dlerror());
	compat_spawn = (spawn_fn_t *)dlvsym(h, "posix_spawn", "GLIBC_2.2.5");
	compat_spawnp = (spawn_fn_t *)dlvsym(h, "posix_spawnp", "GLIBC_2.2.5");
	T_CHECK(compat_spawn && compat_spawnp, "dlvsym posix_spawn@GLIBC_2.2.5: %s", dlerror());
}
#else
static void compat_resolve(void)
{
}
#endif

/* ------------------------------------------------------------ observations */

static FILE *obs_file;

__attribute__((format(printf, 1, 2))) static void obs(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(obs_file, fmt, ap);
	va_end(ap);
	fputc('\n', obs_file);
	fflush(obs_file);
}

static const char *errname(int e)
{
	const char *n = e ? strerrorname_np(e) : "0";
	return n ? n : "E?";
}

static char g_dir[PATH_MAX];  /* the role's scratch directory (its cwd) */
static char g_self[PATH_MAX]; /* this program */

/* g_dir/name, in one of a few rotating buffers (per thread: popen-threads uses it). */
static const char *at(const char *name)
{
	static __thread char bufs[8][2 * PATH_MAX];
	static __thread int next;
	char *b = bufs[next++ % 8];
	snprintf(b, sizeof(bufs[0]), "%s/%s", g_dir, name);
	return b;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	T_CHECK(fd >= 0, "create %s: %s", path, strerror(errno));
	size_t len = strlen(text);
	T_CHECK(write(fd, text, len) == (ssize_t)len, "write %s", path);
	T_CHECK(fchmod(fd, mode) == 0, "chmod %s", path);
	close(fd);
}

/* Whole file into buf (NUL-terminated); its length or -1. */
static ssize_t read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t have = 0;
	ssize_t r;

	if (fd < 0)
		return -1;
	while (have < size - 1 && (r = read(fd, buf + have, size - 1 - have)) > 0)
		have += (size_t)r;
	close(fd);
	buf[have] = '\0';
	return (ssize_t)have;
}

/* Each line of a small file the children wrote, NULs shown as '|'. */
static void obs_file_lines(const char *tag, const char *name)
{
	static char buf[1 << 16];
	ssize_t n = read_file(at(name), buf, sizeof(buf));

	if (n < 0) {
		obs("%s: (no %s)", tag, name);
		return;
	}
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = '|';
	for (char *line = buf, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		obs("%s: %s", tag, line);
		if (!nl)
			break;
	}
}

static int exists(const char *name)
{
	return access(at(name), F_OK) == 0;
}

static const char *status_str(int st)
{
	static char b[96];
	if (WIFEXITED(st))
		snprintf(b, sizeof(b), "%#x exited %d", (unsigned)st, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(b, sizeof(b), "%#x killed by SIG%s%s", (unsigned)st, sigabbrev_np(WTERMSIG(st)),
			 WCOREDUMP(st) ? " (core)" : "");
	else
		snprintf(b, sizeof(b), "%#x", (unsigned)st);
	return b;
}

/* A wait status, or -1 with errno as the function left it. */
static void obs_status(const char *tag, int st, int err)
{
	if (st == -1)
		obs("%s: -1 errno=%s", tag, errname(err));
	else
		obs("%s: %s", tag, status_str(st));
}

/* Is a zombie left?  (Failed spawns and cancelled system() must leave none; other children may run.) */
static void obs_children(const char *tag)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		obs("%s: no child left (%s)", tag, errname(errno));
	else if (si.si_pid == 0)
		obs("%s: no zombie (children still running)", tag);
	else {
		obs("%s: a zombie was left behind", tag);
		waitpid(si.si_pid, NULL, 0);
	}
}

/* ------------------------------------------------------------ signals */

static const char *sig_name(int s)
{
	static char b[16];
	const char *a = sigabbrev_np(s);
	if (a)
		return a;
	snprintf(b, sizeof(b), "%d", s);
	return b;
}

/* Names of the signals of a /proc status mask ("-" if none). */
static const char *mask_names(uint64_t bits)
{
	static char b[1024];
	size_t n = 0;

	b[0] = '\0';
	for (int s = 1; s <= 64; s++)
		if (bits & (1ull << (s - 1)))
			n += (size_t)snprintf(b + n, sizeof(b) - n, "%s%s", n ? "," : "", sig_name(s));
	return n ? b : "-";
}

static uint64_t set_bits(const sigset_t *set)
{
	uint64_t bits = 0;
	for (int s = 1; s <= 64; s++)
		if (sigismember(set, s) == 1)
			bits |= 1ull << (s - 1);
	return bits;
}

#define BIT(s) (1ull << ((s) - 1))
#define SA_RESTORER_BIT 0x04000000 /* (not exported by <signal.h>) */

static void h_a(int s)
{
	(void)s;
}

static void h_b(int s)
{
	(void)s;
}

static void set_handler(int sig, void (*h)(int), int flags, int mask_sig)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = h;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (mask_sig)
		sigaddset(&sa.sa_mask, mask_sig);
	T_CHECK(sigaction(sig, &sa, NULL) == 0, "sigaction(%d): %s", sig, strerror(errno));
}

static void block(int sig)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, sig);
	T_CHECK(pthread_sigmask(SIG_BLOCK, &s, NULL) == 0, "sigmask");
}

/* Disposition of sig (handler, flags, mask) as text. */
static const char *disposition(int sig)
{
	static char b[1200];
	struct sigaction sa;
	const char *h;

	T_CHECK(sigaction(sig, NULL, &sa) == 0, "sigaction query");
	if (sa.sa_handler == SIG_DFL)
		h = "default";
	else if (sa.sa_handler == SIG_IGN)
		h = "ignored";
	else if (sa.sa_handler == h_a)
		h = "handler h_a";
	else if (sa.sa_handler == h_b)
		h = "handler h_b";
	else
		h = "an unknown handler";
	/* glibc's sigaction() always adds SA_RESTORER: shown apart, and left out of the restore checks */
	snprintf(b, sizeof(b), "%s %s flags=%#x%s mask=%s", sig_name(sig), h, (unsigned)sa.sa_flags & ~SA_RESTORER_BIT,
		 sa.sa_flags & SA_RESTORER_BIT ? "+restorer" : "", mask_names(set_bits(&sa.sa_mask)));
	return b;
}

/* s without the "+restorer" marks, for comparing dispositions as a program sets them */
static const char *no_restorer(const char *s)
{
	static char b[4096];
	size_t n = 0;
	for (const char *p = s; *p && n < sizeof(b) - 1;)
		if (!strncmp(p, "+restorer", 9))
			p += 9;
		else
			b[n++] = *p++;
	b[n] = '\0';
	return b;
}

/* What system() must leave as it found it: SIGINT, SIGQUIT, SIGCHLD and the mask. */
static const char *sigstate(void)
{
	static char b[4096];
	sigset_t cur;
	size_t n = 0;
	static const int sigs[] = { SIGINT, SIGQUIT, SIGCHLD };

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		n += (size_t)snprintf(b + n, sizeof(b) - n, "%s; ", disposition(sigs[i]));
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	snprintf(b + n, sizeof(b) - n, "blocked %s", mask_names(set_bits(&cur)));
	return b;
}

/* SigBlk and SigIgn of a copy of /proc/PID/status the child made. */
static void obs_status_sigs(const char *tag, const char *name)
{
	static char buf[8192];
	int found = 0;

	if (read_file(at(name), buf, sizeof(buf)) < 0) {
		obs("%s: (no %s)", tag, name);
		return;
	}
	for (char *sp = NULL, *line = strtok_r(buf, "\n", &sp); line; line = strtok_r(NULL, "\n", &sp)) {
		unsigned long long v;
		if (sscanf(line, "SigBlk: %llx", &v) == 1)
			obs("%s: blocked %s", tag, mask_names(v)), found++;
		else if (sscanf(line, "SigIgn: %llx", &v) == 1)
			obs("%s: ignored %s", tag, mask_names(v)), found++;
	}
	T_CHECK(found == 2, "%s: no SigBlk/SigIgn in %s", tag, name);
}

static uint64_t status_mask(const char *name, const char *key)
{
	static char buf[8192];
	char fmt[32];

	if (read_file(at(name), buf, sizeof(buf)) < 0)
		return 0;
	snprintf(fmt, sizeof(fmt), "%s: %%llx", key);
	for (char *sp = NULL, *line = strtok_r(buf, "\n", &sp); line; line = strtok_r(NULL, "\n", &sp)) {
		unsigned long long v;
		if (sscanf(line, fmt, &v) == 1)
			return v;
	}
	return 0;
}

/* ------------------------------------------------------------ the probe */

static char probe_out[1 << 16];
static size_t probe_len;

__attribute__((format(printf, 1, 2))) static void put(const char *fmt, ...)
{
	va_list ap;
	if (probe_len >= sizeof(probe_out) - 1)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(probe_out + probe_len, sizeof(probe_out) - probe_len, fmt, ap);
	va_end(ap);
	if (n > 0)
		probe_len += (size_t)n < sizeof(probe_out) - probe_len ? (size_t)n : sizeof(probe_out) - 1 - probe_len;
}

/* What a descriptor is, the same in every run: pipes and sockets by kind, files by name. */
static const char *fd_kind(const char *target)
{
	if (!strncmp(target, "pipe:", 5))
		return "pipe";
	if (!strncmp(target, "socket:", 7))
		return "socket";
	if (!strncmp(target, "/dev/pts/", 9))
		return "/dev/pts/N";
	if (!strncmp(target, "/dev/", 5) || target[0] != '/')
		return target;
	return strrchr(target, '/') + 1;
}

/*
 * Write down the state this process was started with into out.
 * Descriptors are listed first, before this code opens any of its own.
 */
static void probe_report(int argc, char **argv, const char *out)
{
	static char buf[1 << 16];
	char link[64], target[PATH_MAX];

	for (int fd = 0; fd < 1024; fd++) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0)
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t r = readlink(link, target, sizeof(target) - 1);
		target[r > 0 ? r : 0] = '\0';
		if (r <= 0)
			snprintf(target, sizeof(target), "?");
		int acc = fl & O_ACCMODE;
		put("fd %d %s %s%s%s\n", fd, fd_kind(target), acc == O_RDONLY ? "r" : acc == O_WRONLY ? "w" : "rw",
		    fl & O_APPEND ? " append" : "", fl & O_NONBLOCK ? " nonblock" : "");
	}
	put("argc %d\n", argc);
	for (int i = 0; i < argc; i++)
		put("argv[%d] %s\n", i, argv[i]);
	/* the environment exactly as execve() received it */
	ssize_t n = read_file("/proc/self/environ", buf, sizeof(buf));
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
		put("env %s\n", buf + i);
	if (n < 0)
		put("env (unreadable)\n");
	if (getcwd(target, sizeof(target)))
		put("cwd %s\n", strrchr(target, '/')[1] ? strrchr(target, '/') + 1 : "/");
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	getresuid(&ru, &eu, &su);
	getresgid(&rg, &eg, &sg);
	put("ids uid=%d euid=%d gid=%d egid=%d\n", (int)ru, (int)eu, (int)rg, (int)eg);
	put("pid %d\nppid %d\npgid %d\nsid %d\n", (int)getpid(), (int)getppid(), (int)getpgrp(), (int)getsid(0));
	struct sched_param param = { 0 };
	sched_getparam(0, &param);
	put("sched policy=%d priority=%d\n", sched_getscheduler(0), param.sched_priority);
	n = read_file("/proc/self/status", buf, sizeof(buf));
	for (char *sp = NULL, *line = n > 0 ? strtok_r(buf, "\n", &sp) : NULL; line; line = strtok_r(NULL, "\n", &sp)) {
		unsigned long long v;
		if (sscanf(line, "SigBlk: %llx", &v) == 1)
			put("sigblk %s\n", mask_names(v));
		else if (sscanf(line, "SigIgn: %llx", &v) == 1)
			put("sigign %s\n", mask_names(v));
	}
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0 || write(fd, probe_out, probe_len) != (ssize_t)probe_len)
		_exit(3);
	close(fd);
}

/* argv[0] probe OUT [...] */
static int probe_main(int argc, char **argv)
{
	probe_report(argc, argv, argv[2]);
	_exit(0);
}

/*
 * This program as /bin/sh (see fake_shell()): write down how system() or
 * popen() started the shell, then become the real shell, same argv.
 */
static int shell_main(int argc, char **argv)
{
	probe_report(argc, argv, getenv("T_SHELL_REPORT"));
	execv(getenv("T_REAL_SH"), argv);
	_exit(127);
}

/* ------------------------------------------------------------ reading a probe's report */

static pid_t g_helper = -1; /* a process-group leader some roles create */

/* A process id as a relation: the same in every run. */
static const char *pid_rel(pid_t v, pid_t self, pid_t child)
{
	if (v == self)
		return "self";
	if (v == child)
		return "child";
	if (v == getpid())
		return "caller";
	if (v == getpgrp())
		return "caller's group";
	if (v == getsid(0))
		return "caller's session";
	if (v == g_helper)
		return "helper";
	return "other";
}

/*
 * The env lines of a report against this process's environment; without
 * PWD if skip_pwd (dash exports the PWD it computed to the commands it runs).
 */
static void obs_env_vs_caller(const char *tag, const char *report, int skip_pwd)
{
	int n_probe = 0, n_mine = 0, missing = 0;
	static char line[8192], first_missing[128];

	for (char **e = environ; *e; e++)
		n_mine += !(skip_pwd && !strncmp(*e, "PWD=", 4));
	for (const char *p = report; (p = strstr(p, "\nenv ")); p++) {
		const char *s = p + 5, *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) : strlen(s);
		snprintf(line, sizeof(line), "%.*s", (int)len, s);
		if (skip_pwd && !strncmp(line, "PWD=", 4))
			continue;
		n_probe++;
		int found = 0;
		for (char **e = environ; *e && !found; e++)
			found = !strcmp(*e, line);
		if (!found && !missing++)
			snprintf(first_missing, sizeof(first_missing), "%.100s", line);
	}
	if (!missing && n_probe == n_mine)
		obs("%s: environment = the caller's current environ%s", tag, skip_pwd ? " (PWD aside)" : "");
	else
		obs("%s: environment differs from the caller's environ: %d vs %d entries, first foreign: %.60s", tag,
		    n_probe, n_mine, missing ? first_missing : "-");
}

/* The selector letter of a report line's key (see emit_probe). */
static char key_class(const char *key)
{
	static const struct { const char *key; char k; } classes[] = {
		{ "argc", 'a' }, { "env", 'e' },  { "fd", 'f' },     { "cwd", 'c' },	 { "ids", 'i' },
		{ "pid", 'p' },	 { "ppid", 'p' }, { "pgid", 'p' },   { "sid", 'p' },	 { "sigblk", 's' },
		{ "sigign", 's' }, { "sched", 'S' },
	};
	if (!strncmp(key, "argv[", 5))
		return 'a';
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (!strcmp(key, classes[i].key))
			return classes[i].k;
	return '?';
}

/*
 * Report the lines of a probe's report selected by keys:
 * a argv, e environment, E environment compared with ours (W: PWD aside), f descriptors,
 * c cwd, i ids, p pid/ppid/pgid/sid (as relations), s signals, S scheduling.
 */
static void emit_probe(const char *tag, const char *path, const char *keys, pid_t child)
{
	static char buf[1 << 16];
	static char rep[(1 << 16) + 2];

	if (read_file(path, buf, sizeof(buf)) <= 0) {
		obs("%s: the probe wrote no report", tag);
		return;
	}
	snprintf(rep, sizeof(rep), "\n%s", buf);
	pid_t self = -1;
	int n_env = 0;
	const char *p = strstr(rep, "\npid ");
	if (p)
		self = (pid_t)atoi(p + 5);
	for (char *sp = NULL, *line = strtok_r(buf, "\n", &sp); line; line = strtok_r(NULL, "\n", &sp)) {
		char key[16] = "";
		sscanf(line, "%15s", key);
		const char *rest = line + strlen(key) + (line[strlen(key)] ? 1 : 0);
		char k = key_class(key);
		if (!strchr(keys, k))
			continue;
		if (k == 'e')
			n_env++;
		if (k == 'p' && !strcmp(key, "pid")) {
			if (child > 0)
				obs("%s: pid %s", tag, self == child ? "the one returned" : "NOT the one returned");
		} else if (k == 'p')
			obs("%s: %s %s", tag, key, pid_rel((pid_t)atoi(rest), self, child));
		else
			obs("%s: %s", tag, line);
	}
	if (strchr(keys, 'e') && !n_env)
		obs("%s: (empty environment)", tag);
	if (strchr(keys, 'E') || strchr(keys, 'W'))
		obs_env_vs_caller(tag, rep, !!strchr(keys, 'W'));
}

/* 1 if the report has this exact line. */
static int probe_has(const char *path, const char *want)
{
	static char buf[1 << 16];
	static char w[256];

	if (read_file(path, buf, sizeof(buf)) <= 0)
		return 0;
	snprintf(w, sizeof(w), "%s\n", want);
	return !strncmp(buf, w, strlen(w)) || (strstr(buf, w) && strstr(buf, w)[-1] == '\n');
}

/* Does the probe's report list descriptor fd?  (Thread-safe.) */
static int probe_has_fd(const char *path, int fd)
{
	static __thread char buf[1 << 16];
	char w[32];

	if (read_file(path, buf, sizeof(buf)) <= 0)
		return 0;
	snprintf(w, sizeof(w), "fd %d ", fd);
	for (char *sp = NULL, *line = strtok_r(buf, "\n", &sp); line; line = strtok_r(NULL, "\n", &sp))
		if (!strncmp(line, w, strlen(w)))
			return 1;
	return 0;
}

/* A fresh report file anyone may write (the probe may run as nobody). */
static const char *report_path(const char *name)
{
	const char *p = at(name);
	write_file(p, "", 0666);
	return p;
}

/* The shell command that replaces the shell with the probe (per-thread buffer). */
static const char *probe_cmd(const char *out)
{
	static __thread char b[3 * PATH_MAX];
	snprintf(b, sizeof(b), "exec '%s' probe '%s'", g_self, out);
	return b;
}

/* The rest of the first line of a report starting with key, into out ("" if none). */
static void probe_line(const char *path, const char *key, char *out, size_t size)
{
	static char buf[1 << 16];
	size_t klen = strlen(key);

	out[0] = '\0';
	if (read_file(path, buf, sizeof(buf)) <= 0)
		return;
	for (char *sp = NULL, *line = strtok_r(buf, "\n", &sp); line; line = strtok_r(NULL, "\n", &sp))
		if (!strncmp(line, key, klen) && line[klen] == ' ') {
			snprintf(out, size, "%s", line + klen + 1);
			return;
		}
}

/* Is the signal named in a list of names ("INT,USR2,32")? */
static int has_sig(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; (p = strstr(p, name)); p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return 1;
	return 0;
}

/*
 * The shell system() and popen() start is dash, which clears its signal mask
 * at once: no command it runs shows the mask it was given.  So, as root, in
 * a private mount namespace, /bin/sh becomes this program: it writes down
 * the state it was started with (the probe's report, into $T_SHELL_REPORT)
 * and then execs a copy of the real shell with the same argv (shell_main).
 * Without the privilege, this view is not covered (in both runs alike).
 */
static int g_fake_sh;

static void fake_shell(void)
{
	static char buf[1 << 16];
	char real[PATH_MAX];
	ssize_t r;

	if (geteuid() != 0 || !realpath("/bin/sh", real)) {
		obs("(not root: the shell's starting state is not observed)");
		return;
	}
	int in = open(real, O_RDONLY | O_CLOEXEC), out = open(at("real-sh"), O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	T_CHECK(in >= 0 && out >= 0, "copy %s: %s", real, strerror(errno));
	while ((r = read(in, buf, sizeof(buf))) > 0)
		T_CHECK(write(out, buf, (size_t)r) == r, "copy %s", real);
	close(in);
	close(out);
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount(g_self, real, NULL, MS_BIND, NULL) != 0) {
		obs("(no private mount namespace: the shell's starting state is not observed)");
		return;
	}
	setenv("T_REAL_SH", at("real-sh"), 1);
	setenv("T_SHELL_REPORT", at("shell.report"), 1);
	g_fake_sh = 1;
}

/* Where the fake shell writes its report, for the next system()/popen(). */
static void shell_report(const char *name)
{
	if (!g_fake_sh)
		return;
	unlink(at(name));
	setenv("T_SHELL_REPORT", at(name), 1);
}

/*
 * Shell code that waits until the caller sleeps (state S: in its wait for
 * the child).  Right after a vfork-style spawn the caller is released but
 * may not have run yet, still with every signal blocked.  Bounded: 200 quick
 * looks, then up to 3 s of 10 ms naps (a loaded machine).
 */
static const char wait_for_caller[] =
	"i=0; while [ $i -lt 500 ]; do read s </proc/$PPID/stat; s=${s##*) }; [ \"${s%% *}\" = S ] && break; "
	"i=$((i+1)); [ $i -gt 200 ] && sleep 0.01; done;";

/* ------------------------------------------------------------ spawning */

enum spawn_fn { SP_NEW, SP_NEWP, SP_OLD, SP_OLDP };
static const char *const sp_name[] = { "posix_spawn", "posix_spawnp", "posix_spawn@GLIBC_2.2.5",
				       "posix_spawnp@GLIBC_2.2.5" };

static int spawn_with(enum spawn_fn which, pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
		      const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	switch (which) {
	case SP_NEW:
		return posix_spawn(pid, file, fa, attr, argv, envp);
	case SP_NEWP:
		return posix_spawnp(pid, file, fa, attr, argv, envp);
#ifdef HAVE_COMPAT_SPAWN
	case SP_OLD:
		return compat_spawn(pid, file, fa, attr, argv, envp);
	case SP_OLDP:
		return compat_spawnp(pid, file, fa, attr, argv, envp);
#else
	default:
		break;
#endif
	}
	t_fail("spawn function %d: not on this architecture", (int)which);
}

/* The caller's descriptors (with FD_CLOEXEC), dispositions, mask and cwd: a spawn changes none of them. */
static const char *caller_state(void)
{
	static char b[16384];
	size_t n = 0;
	sigset_t cur;
	char cwd[PATH_MAX];

	for (int fd = 0; fd < 256; fd++) {
		int fl = fcntl(fd, F_GETFD);
		if (fl >= 0)
			n += (size_t)snprintf(b + n, sizeof(b) - n, "%d%s ", fd, fl & FD_CLOEXEC ? "c" : "");
	}
	for (int s = 1; s < 32 && n < sizeof(b) - 1300; s++)
		if (s != SIGKILL && s != SIGSTOP)
			n += (size_t)snprintf(b + n, sizeof(b) - n, "%s; ", disposition(s));
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	n += (size_t)snprintf(b + n, sizeof(b) - n, "blocked %s; ", mask_names(set_bits(&cur)));
	snprintf(b + n, sizeof(b) - n, "cwd %s", getcwd(cwd, sizeof(cwd)) ? cwd : "?");
	return b;
}

static char *probe_env[] = { "SF_PROBE=1", NULL };

/*
 * Spawn, report the outcome (error, pid left alone, nothing to reap; or the
 * exit status) and whether the caller's own state changed.  Returns the pid
 * or -1.
 */
static pid_t spawn_report(const char *tag, enum spawn_fn which, const char *file,
			  const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr, char *const argv[],
			  char *const envp[])
{
	static char before[16384];
	pid_t pid = -77;
	int st;

	snprintf(before, sizeof(before), "%s", caller_state());
	int rc = spawn_with(which, &pid, file, fa, attr, argv, envp);
	if (strcmp(before, caller_state()))
		obs("%s: the CALLER's state changed: before [%s] after [%s]", tag, before, caller_state());
	if (rc != 0) {
		obs("%s: %s, pid %s", tag, errname(rc), pid == -77 ? "untouched" : "written");
		obs_children(tag);
		return -1;
	}
	if (waitpid(pid, &st, 0) != pid)
		t_fail("%s: waitpid: %s", tag, strerror(errno));
	obs("%s: ok, %s", tag, status_str(st));
	return pid;
}

/* Spawn the probe (by absolute path) and report what it saw. */
static void spawn_probe(const char *tag, enum spawn_fn which, const posix_spawn_file_actions_t *fa,
			const posix_spawnattr_t *attr, const char *keys)
{
	char name[128];
	size_t i;

	for (i = 0; tag[i] && i < sizeof(name) - 8; i++)
		name[i] = (tag[i] >= 'a' && tag[i] <= 'z') || (tag[i] >= '0' && tag[i] <= '9') ? tag[i] : '-';
	snprintf(name + i, sizeof(name) - i, ".probe");
	const char *out = report_path(name);
	char *argv[] = { "probe-argv0", "probe", (char *)out, NULL };
	pid_t pid = spawn_report(tag, which, g_self, fa, attr, argv, probe_env);
	if (pid > 0)
		emit_probe(tag, out, keys, pid);
}

#define FA_INIT(fa) T_CHECK(posix_spawn_file_actions_init(fa) == 0, "file_actions_init")
#define FA(call) T_CHECK((call) == 0, "%s failed", #call)
#define ATTR_INIT(a, flags) \
	T_CHECK(posix_spawnattr_init(a) == 0 && posix_spawnattr_setflags(a, (short)(flags)) == 0, "attr")

/* Open path at descriptor want (O_CLOEXEC in flags is kept). */
static void fd_at(int want, const char *path, int flags)
{
	int fd = open(path, flags, 0600);
	T_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	if (fd != want) {
		T_CHECK(dup3(fd, want, flags & O_CLOEXEC) == want, "dup3");
		close(fd);
	}
}

/* ================================================================ system() */

static void role_system_status(void)
{
	static const char *const cmds[] = {
		"exit 3",
		"exit 300",
		"kill -TERM $$",
		"kill -KILL $$",
		"sf-no-such-command",
		"exec /sf/no/such/file",
		"",
		"   exit 7",
		"-x",
		"+x",
		"-",
		"--",
		"echo 'two  spaces' \"dq $((40 + 2))\" \\$HOME >quoted.txt; exit 4",
		"exec 3>fd3.txt; echo via-fd3 >&3; cat <quoted.txt >&3; exit 0",
		"printf '%s|' \"$0\" \"$#\" \"$-\" >args.txt",
		/* "; exit 0": tr must not replace the shell, whose argv we want */
		"tr '\\0' '|' </proc/$$/cmdline >cmdline.txt; exit 0",
	};
	char tag[160];
	int st = system(NULL);

	obs("system(NULL): %d", st);
	T_CHECK(st != 0, "system(NULL) says there is no shell");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		st = system(cmds[i]);
		snprintf(tag, sizeof(tag), "system(\"%s\")", cmds[i]);
		obs_status(tag, st, errno);
	}
	st = system("exit 3");
	T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3, "exit 3: %#x", (unsigned)st);
	st = system("kill -TERM $$");
	T_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "kill -TERM $$: %#x", (unsigned)st);
	T_CHECK(system("sf-no-such-command 2>/dev/null") == 127 << 8, "a missing command is not 127<<8");
	obs_file_lines("quoted.txt", "quoted.txt");
	obs_file_lines("fd3.txt", "fd3.txt");
	obs_file_lines("$0|$#|$-", "args.txt");
	obs_file_lines("the shell's argv", "cmdline.txt");
}

/*
 * Caller: 0 all default; 1 SIGINT ignored, SIGQUIT handled, SIGUSR1 blocked,
 * SIGUSR2 ignored, SIGTERM handled; 2 SIGINT handled (SA_RESTART, mask
 * USR2), SIGQUIT ignored, SIGCHLD blocked and handled, SIGHUP ignored.
 */
static void system_signals(int variant)
{
	static char before[4096], omask[1024], ign[1024], blk[1024];
	char cmd[4 * PATH_MAX];
	sigset_t cur;

	if (variant == 1) {
		signal(SIGINT, SIG_IGN);
		set_handler(SIGQUIT, h_a, 0, 0);
		block(SIGUSR1);
		signal(SIGUSR2, SIG_IGN);
		set_handler(SIGTERM, h_b, 0, 0);
	} else if (variant == 2) {
		set_handler(SIGINT, h_a, SA_RESTART, SIGUSR2);
		signal(SIGQUIT, SIG_IGN);
		set_handler(SIGCHLD, h_b, SA_NOCLDSTOP, 0);
		block(SIGCHLD);
		signal(SIGHUP, SIG_IGN);
	}
	fake_shell();
	snprintf(before, sizeof(before), "%s", sigstate());
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	snprintf(omask, sizeof(omask), "%s", mask_names(set_bits(&cur)));
	obs("before: %s", before);
	shell_report("shell.report");
	/* $PPID is the caller, waiting in system(); then the probe replaces the shell */
	snprintf(cmd, sizeof(cmd), "%s cat /proc/$PPID/status >caller.txt; %s", wait_for_caller,
		 probe_cmd(at("command.probe")));
	int st = system(cmd);
	obs_status("system(probe)", st, errno);
	obs_status_sigs("the caller while it waits", "caller.txt");
	if (g_fake_sh)
		emit_probe("the shell as started", at("shell.report"), "asfEp", 0);
	/* (dash clears its signal mask: only what it ignores shows in the command) */
	emit_probe("the command the shell ran", at("command.probe"), "sWp", 0);
	obs("after: %s", sigstate());

	/* POSIX: the caller ignores SIGINT and SIGQUIT and blocks SIGCHLD while it waits, then restores them */
	uint64_t c_ign = status_mask("caller.txt", "SigIgn"), c_blk = status_mask("caller.txt", "SigBlk");
	T_CHECK((c_ign & BIT(SIGINT)) && (c_ign & BIT(SIGQUIT)), "the caller did not ignore SIGINT/SIGQUIT while waiting");
	T_CHECK(c_blk & BIT(SIGCHLD), "the caller did not block SIGCHLD while waiting");
	T_CHECK(!strcmp(no_restorer(before), no_restorer(sigstate())), "not restored: before [%s] after [%s]", before,
		sigstate());
	/* the shell: SIGINT/SIGQUIT not ignored unless the caller ignored them; the caller's mask */
	if (g_fake_sh) {
		probe_line(at("shell.report"), "sigign", ign, sizeof(ign));
		probe_line(at("shell.report"), "sigblk", blk, sizeof(blk));
		T_CHECK(has_sig(ign, "INT") == (variant == 1) && has_sig(ign, "QUIT") == (variant == 2),
			"the shell's SIGINT/SIGQUIT: ignored %s", ign);
		T_CHECK(!strcmp(blk, omask), "the shell's mask is %s, the caller's %s", blk, omask);
	}
}

static void role_system_signals_default(void)
{
	system_signals(0);
}

static void role_system_signals_ignored(void)
{
	system_signals(1);
}

static void role_system_signals_handled(void)
{
	system_signals(2);
}

/* The shell's and the command's view: descriptors, environment (the current environ), cwd, ids, group. */
static void role_system_child_view(void)
{
	fake_shell();
	setenv("SF_LATE", "added after start", 1);
	unsetenv("SF_GONE");
	fd_at(40, at("inherit.txt"), O_RDWR | O_CREAT);
	fd_at(41, at("cloexec.txt"), O_RDWR | O_CREAT | O_CLOEXEC);
	shell_report("popen.report"); /* (each shell its own report: they may run at the same time) */
	FILE *p = popen("cat >/dev/null", "w"); /* system() does not close popen streams */
	T_CHECK(p, "popen");
	shell_report("system.report");
	int st = system(probe_cmd(at("view.probe")));
	obs_status("system(probe)", st, errno);
	if (g_fake_sh)
		emit_probe("the shell as started", at("system.report"), "afEcipS", 0);
	emit_probe("the command", at("view.probe"), "fWcipS", 0);
	obs("the command holds the popen stream's descriptor: %s",
	    probe_has_fd(at("view.probe"), fileno(p)) ? "yes" : "no");
	T_CHECK(probe_has_fd(at("view.probe"), 40) && !probe_has_fd(at("view.probe"), 41), "descriptor inheritance");
	obs_status("pclose", pclose(p), errno);
	close(40);
	close(41);
}

/* SIGCHLD ignored: the child is reaped by the kernel, system() returns -1 with ECHILD. */
static void role_system_sigchld_ignored(void)
{
	signal(SIGCHLD, SIG_IGN);
	errno = 0;
	int st = system("exit 3");
	obs_status("system(exit 3) with SIGCHLD ignored", st, errno);
	obs_children("after");
	obs("after: %s", sigstate());
}

/* A command string longer than one argument may be: the shell cannot be started. */
static void role_system_e2big(void)
{
	size_t len = 200000;
	char *cmd = malloc(len + 1);

	T_CHECK(cmd, "malloc");
	memset(cmd, 'x', len);
	memcpy(cmd, "true #", 6);
	cmd[len] = '\0';
	errno = 0;
	int st = system(cmd);
	obs_status("system(a 200000-byte command)", st, errno);
	obs("errno=%s", errname(errno));
	obs_children("after");
	obs("after: %s", sigstate());
	cmd[100000] = '\0';
	obs_status("system(a 100000-byte command)", system(cmd), errno);
	free(cmd);
}

static void *system_thread(void *cmd)
{
	return (void *)(intptr_t)system(cmd);
}

/*
 * system() is a cancellation point: a cancelled caller kills the child
 * (SIGKILL), reaps it and restores SIGINT/SIGQUIT on its way out.
 */
static void role_system_cancel(void)
{
	char buf[64];
	pthread_t t;
	void *ret = NULL;

	set_handler(SIGINT, h_a, 0, 0);
	obs("before: %s", sigstate());
	unlink(at("pid.txt"));
	T_CHECK(pthread_create(&t, NULL, system_thread, "echo $$ >pid.tmp && mv pid.tmp pid.txt; exec sleep 30") == 0,
		"pthread_create");
	/* wait (bounded) until the command runs: then the thread is in system() */
	for (int i = 0; i < 5000 && read_file(at("pid.txt"), buf, sizeof(buf)) <= 0; i++)
		nanosleep(&(struct timespec){ 0, 2000000 }, NULL);
	pid_t pid = (pid_t)atoi(buf);
	T_CHECK(pid > 0, "the command did not start within 10 s");
	T_CHECK(pthread_cancel(t) == 0, "pthread_cancel");
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	if (pthread_timedjoin_np(t, &ret, &deadline) == ETIMEDOUT) {
		obs("the thread still runs 10 s after pthread_cancel");
		kill(pid, SIGKILL);
		pthread_join(t, &ret);
	}
	obs("the thread ended %s", ret == PTHREAD_CANCELED ? "cancelled (PTHREAD_CANCELED)" : "by returning");
	if (kill(pid, 0) < 0 && errno == ESRCH) {
		obs("the command: killed and reaped");
	} else {
		char stat[512] = "", *rp;
		snprintf(buf, sizeof(buf), "/proc/%d/stat", (int)pid);
		read_file(buf, stat, sizeof(stat));
		rp = strrchr(stat, ')');
		obs("the command: %s", rp && rp[2] == 'Z' ? "a zombie" : "STILL RUNNING");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	obs_children("after");
	obs("after: %s", sigstate());
}

static void *system_many(void *arg)
{
	long k = (long)(intptr_t)arg, bad = 0;
	char cmd[32];

	for (int i = 0; i < 10; i++) {
		int code = (int)(k * 10 + i) % 256;
		snprintf(cmd, sizeof(cmd), "exit %d", code);
		int st = system(cmd);
		bad += !(WIFEXITED(st) && WEXITSTATUS(st) == code);
	}
	return (void *)(intptr_t)bad;
}

/* Four threads in system() at once: each status right, the dispositions restored after the last one. */
static void role_system_threads(void)
{
	pthread_t t[4];
	long bad = 0;
	void *r;

	set_handler(SIGINT, h_a, 0, 0);
	signal(SIGQUIT, SIG_IGN);
	const char *before = strdup(sigstate());
	obs("before: %s", before);
	for (long i = 0; i < 4; i++)
		T_CHECK(pthread_create(&t[i], NULL, system_many, (void *)(intptr_t)i) == 0, "pthread_create");
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], &r);
		bad += (long)(intptr_t)r;
	}
	obs("4 threads x 10 system(): %ld wrong statuses", bad);
	obs("after: %s", sigstate());
	T_CHECK(bad == 0 && !strcmp(before, sigstate()), "concurrent system()");
	free((void *)before);
	obs_children("after");
}

/* ================================================================ popen() */

static void role_popen_modes(void)
{
	static const char *const modes[] = { "r",  "w",	 "re", "we", "er", "ew", "rr", "rre", "ree", "",
					     "rw", "wr", "x",  "r+", "w+", "rb", "e",  "rwe", "R" };

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		const char *m = modes[i];
		errno = 0;
		FILE *p = popen("exit 0", m);
		int e = errno;
		if (!p) {
			obs("popen(\"%s\"): NULL errno=%s", m, errname(e));
			continue;
		}
		int fd = fileno(p), fdfl = fcntl(fd, F_GETFD), fl = fcntl(fd, F_GETFL) & O_ACCMODE;
		obs("popen(\"%s\"): a stream for %s, close-on-exec %s", m, fl == O_RDONLY ? "reading" : "writing",
		    fdfl & FD_CLOEXEC ? "set" : "clear");
		T_CHECK(!!(fdfl & FD_CLOEXEC) == !!strchr(m, 'e'), "popen(\"%s\"): FD_CLOEXEC", m);
		obs_status("  pclose", pclose(p), errno);
	}
	T_CHECK(!popen("exit 0", "rw") && errno == EINVAL, "popen(\"rw\") must fail with EINVAL");
}

static void obs_stream(const char *tag, FILE *p)
{
	char line[512];
	while (fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = '\0';
		obs("%s: read \"%s\"", tag, line);
	}
}

static void role_popen_io(void)
{
	FILE *p = popen("printf 'line1\\nline 2\\n'; exit 5", "r");
	T_CHECK(p, "popen r");
	obs_stream("r", p);
	int st = pclose(p);
	obs_status("r: pclose", st, errno);
	T_CHECK(st == 5 << 8, "pclose of exit 5: %#x", (unsigned)st);

	p = popen("cat >written.txt; exit 6", "w");
	T_CHECK(p, "popen w");
	fputs("hello\nworld\n", p);
	obs_status("w: pclose", pclose(p), errno);
	obs_file_lines("w: the command got", "written.txt");

	p = popen("kill -TERM $$", "r");
	obs_stream("killed", p);
	obs_status("killed: pclose", pclose(p), errno);

	p = popen("tr '\\0' '|' </proc/$$/cmdline; exit 0", "r");
	obs_stream("the shell's argv", p);
	obs_status("argv: pclose", pclose(p), errno);

	p = popen("-x 2>/dev/null", "r");
	obs_stream("-x", p);
	obs_status("-x: pclose", pclose(p), errno);
}

/* The shell's and the command's descriptors, signals and environment, for "r" and "w". */
static void role_popen_child_view(void)
{
	fake_shell();
	fd_at(40, at("inherit.txt"), O_RDWR | O_CREAT);
	fd_at(41, at("cloexec.txt"), O_RDWR | O_CREAT | O_CLOEXEC);
	set_handler(SIGUSR1, h_a, 0, 0);
	signal(SIGUSR2, SIG_IGN);
	block(SIGWINCH);
	for (int w = 0; w < 2; w++) {
		const char *mode = w ? "we" : "r", *out = at(w ? "w.probe" : "r.probe");
		char tag[64];
		shell_report(w ? "w.report" : "r.report");
		FILE *p = popen(probe_cmd(out), mode);
		T_CHECK(p, "popen");
		snprintf(tag, sizeof(tag), "\"%s\"", mode);
		obs_stream(tag, p);
		obs_status(tag, pclose(p), errno);
		snprintf(tag, sizeof(tag), "\"%s\": the shell as started", mode);
		if (g_fake_sh)
			emit_probe(tag, at(w ? "w.report" : "r.report"), "afsEp", 0);
		snprintf(tag, sizeof(tag), "\"%s\": the command", mode);
		emit_probe(tag, out, "fsWp", 0);
		T_CHECK(probe_has(out, w ? "fd 0 pipe r" : "fd 1 pipe w"), "popen(\"%s\"): the command's %s is not the pipe",
			mode, w ? "stdin" : "stdout");
	}
	close(40);
	close(41);
}

/* POSIX: streams of earlier popen() calls still open are closed in later children. */
static void role_popen_previous(void)
{
	FILE *p1 = popen("cat >/dev/null", "w");
	FILE *p2 = popen("cat >/dev/null", "we");
	FILE *p3 = popen("echo from-p3", "r");
	T_CHECK(p1 && p2 && p3, "popen");
	FILE *p4 = popen(probe_cmd(at("p4.probe")), "r");
	T_CHECK(p4, "popen");
	obs_stream("p4", p4);
	obs_status("p4: pclose", pclose(p4), errno);
	emit_probe("p4", at("p4.probe"), "f", 0);
	int held = 0;
	FILE *ps[] = { p1, p2, p3 };
	for (int i = 0; i < 3; i++) {
		int h = probe_has_fd(at("p4.probe"), fileno(ps[i]));
		obs("p4's command holds p%d's descriptor: %s", i + 1, h ? "yes" : "no");
		held += h;
	}
	T_CHECK(held == 0, "a later popen() child holds an earlier stream");
	obs_stream("p3", p3);
	obs_status("p3: pclose", pclose(p3), errno);
	obs_status("p2: pclose", pclose(p2), errno);
	obs_status("p1: pclose", pclose(p1), errno);
	/* closed streams are forgotten: nothing of them in the next child */
	FILE *p5 = popen(probe_cmd(at("p5.probe")), "r");
	obs_stream("p5", p5);
	obs_status("p5: pclose", pclose(p5), errno);
	emit_probe("p5", at("p5.probe"), "f", 0);
}

/*
 * The child's stdin/stdout is the pipe even when the caller had closed fd 0
 * and/or 1 (pipe() may then return 0 or 1 itself, even the very descriptor
 * the child needs, for the wrong end).
 */
static void role_popen_closed_stdio(void)
{
	static const struct { const char *name; int close0, close1; } cases[] = {
		{ "fd 0 closed", 1, 0 }, { "fd 1 closed", 0, 1 }, { "fds 0 and 1 closed", 1, 1 } };
	char tag[96], cmd[4 * PATH_MAX], name[64];
	int save0 = fcntl(0, F_DUPFD_CLOEXEC, 60), save1 = fcntl(1, F_DUPFD_CLOEXEC, 60);

	T_CHECK(save0 >= 0 && save1 >= 0, "save stdio");
	fflush(stdout);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int w = 0; w < 2; w++) {
			snprintf(tag, sizeof(tag), "%s, \"%s\"", cases[i].name, w ? "w" : "r");
			snprintf(name, sizeof(name), "cs-%zu-%d.probe", i, w);
			const char *out = at(name);
			if (w)
				snprintf(cmd, sizeof(cmd), "read line; echo \"got $line\" >cs.txt; %s", probe_cmd(out));
			else
				snprintf(cmd, sizeof(cmd), "echo from-child; %s", probe_cmd(out));
			unlink(at("cs.txt"));
			if (cases[i].close0)
				close(0);
			if (cases[i].close1)
				close(1);
			FILE *p = popen(cmd, w ? "w" : "r");
			int fd = p ? fileno(p) : -1, st = -1;
			if (p && w) {
				fputs("to-child\n", p);
				st = pclose(p);
			} else if (p) {
				obs_stream(tag, p);
				st = pclose(p);
			}
			dup2(save0, 0);
			dup2(save1, 1);
			obs("%s: the stream is fd %d", tag, fd);
			obs_status(tag, st, errno);
			if (w)
				obs_file_lines(tag, "cs.txt");
			emit_probe(tag, out, "f", 0);
			T_CHECK(probe_has(out, w ? "fd 0 pipe r" : "fd 1 pipe w"), "%s: the command's %s is not the pipe",
				tag, w ? "stdin" : "stdout");
		}
	}
	close(save0);
	close(save1);
}

/* Odd uses: pclose() of a non-popen stream, fclose() of a popen stream, the child reaped by someone else. */
static void role_popen_pclose_odd(void)
{
	FILE *f = fopen("/dev/null", "r");
	int st;

	__asm__ volatile("" : "+r"(f)); /* pclose() on fopen()'s stream is deliberate */
	errno = 0;
	st = pclose(f);
	obs("pclose(a stream from fopen): %d errno=%s", st, errname(errno));

	FILE *p = popen("exit 5", "r");
	__asm__ volatile("" : "+r"(p)); /* and so is fclose() on popen()'s */
	errno = 0;
	st = fclose(p);
	obs("fclose(a stream from popen(\"exit 5\")): %d errno=%s", st, errname(errno));
	obs_children("after fclose");

	p = popen("exit 5", "r");
	pid_t w = wait(&st);
	obs("wait() in the caller: %s, %s", w > 0 ? "reaped the popen child" : "nothing", status_str(st));
	errno = 0;
	st = pclose(p);
	obs_status("pclose after that", st, errno);

	signal(SIGCHLD, SIG_IGN);
	p = popen("exit 5", "r");
	errno = 0;
	st = pclose(p);
	obs_status("pclose with SIGCHLD ignored", st, errno);
	signal(SIGCHLD, SIG_DFL);
	obs_children("after");
}

static pthread_barrier_t popen_barrier;
static int popen_kept[4]; /* each thread's long-lived stream */

/*
 * Each thread keeps one stream open throughout and runs probes through
 * popen(): no probe may hold a kept stream.  (Only the kept ones: glibc's
 * pclose() takes a stream off its list before it closes the descriptor, so
 * a child spawned by another thread in between may inherit that one.)
 */
static void *popen_many(void *arg)
{
	long k = (long)(intptr_t)arg, bad = 0;
	char name[64], buf[1 << 12];
	FILE *kept = popen("cat >/dev/null", "w");

	if (!kept)
		return (void *)(intptr_t)1000;
	popen_kept[k] = fileno(kept);
	pthread_barrier_wait(&popen_barrier);
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "thr-%ld-%d.probe", k, i);
		const char *out = at(name);
		FILE *p = popen(probe_cmd(out), (i + k) % 2 ? "w" : "r");
		if (!p)
			return (void *)(intptr_t)1000;
		if (!((i + k) % 2))
			while (fread(buf, 1, sizeof(buf), p) > 0)
				;
		bad += pclose(p) != 0 ? 1000 : 0;
		for (int j = 0; j < 4; j++)
			bad += probe_has_fd(out, popen_kept[j]);
	}
	pthread_barrier_wait(&popen_barrier);
	bad += pclose(kept) != 0 ? 1000 : 0;
	return (void *)(intptr_t)bad;
}

/* Four threads in popen()/pclose() at once: no child holds another thread's open stream. */
static void role_popen_threads(void)
{
	pthread_t t[4];
	long bad = 0;
	void *r;

	pthread_barrier_init(&popen_barrier, NULL, 4);
	for (long i = 0; i < 4; i++)
		T_CHECK(pthread_create(&t[i], NULL, popen_many, (void *)(intptr_t)i) == 0, "pthread_create");
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], &r);
		bad += (long)(intptr_t)r;
	}
	pthread_barrier_destroy(&popen_barrier);
	obs("4 threads x 5 popen(): %ld failed (x1000) or held a kept stream", bad);
	T_CHECK(bad == 0, "concurrent popen(): %ld", bad);
	obs_children("after");
}

/* ================================================================ posix_spawn() */

static void role_spawn_file_actions(void)
{
	posix_spawn_file_actions_t fa;
	struct stat sb;

	/* open, then dup2, then close: in that order */
	FA_INIT(&fa);
	FA(posix_spawn_file_actions_addopen(&fa, 50, "fa-opened.txt", O_WRONLY | O_CREAT | O_TRUNC, 0640));
	FA(posix_spawn_file_actions_adddup2(&fa, 50, 51));
	FA(posix_spawn_file_actions_addclose(&fa, 50));
	FA(posix_spawn_file_actions_addopen(&fa, 52, "fa-append.txt", O_WRONLY | O_CREAT | O_APPEND, 0600));
	spawn_probe("open,dup2,close", SP_NEW, &fa, NULL, "fc");
	posix_spawn_file_actions_destroy(&fa);
	obs("fa-opened.txt: mode %03o (umask 022)", stat("fa-opened.txt", &sb) ? 0 : (unsigned)sb.st_mode & 0777);

	/* the reverse order: dup2 of a descriptor not yet open fails */
	FA_INIT(&fa);
	FA(posix_spawn_file_actions_adddup2(&fa, 50, 51));
	FA(posix_spawn_file_actions_addopen(&fa, 50, "fa-reverse.txt", O_WRONLY | O_CREAT, 0600));
	spawn_probe("dup2 before open", SP_NEW, &fa, NULL, "f");
	posix_spawn_file_actions_destroy(&fa);
	obs("fa-reverse.txt created: %d", exists("fa-reverse.txt"));

	/* open onto a descriptor already open (it is closed first); open landing on its own number */
	fd_at(52, at("old.txt"), O_RDONLY | O_CREAT);
	FA_INIT(&fa);
	FA(posix_spawn_file_actions_addopen(&fa, 52, "new.txt", O_RDONLY | O_CREAT, 0600));
	FA(posix_spawn_file_actions_addclose(&fa, 2));
	FA(posix_spawn_file_actions_addopen(&fa, 2, "stderr.txt", O_WRONLY | O_CREAT, 0600));
	spawn_probe("open onto open fds", SP_NEW, &fa, NULL, "f");
	posix_spawn_file_actions_destroy(&fa);
	close(52);

	/* closing a descriptor that is not open is not an error */
	FA_INIT(&fa);
	FA(posix_spawn_file_actions_addclose(&fa, 55));
	FA(posix_spawn_file_actions_addclose(&fa, 0));
	spawn_probe("close of fds not open, and of 0", SP_NEW, &fa, NULL, "f");
	posix_spawn_file_actions_destroy(&fa);

	/* dup2(fd, fd) clears FD_CLOEXEC; dup2 onto another fd gives one without it */
	fd_at(56, at("cloexec56.txt"), O_RDONLY | O_CREAT | O_CLOEXEC);
	fd_at(57, at("cloexec57.txt"), O_RDONLY | O_CREAT | O_CLOEXEC);
	fd_at(54, at("cloexec54.txt"), O_RDONLY | O_CREAT | O_CLOEXEC);
	FA_INIT(&fa);
	FA(posix_spawn_file_actions_adddup2(&fa, 56, 56));
	FA(posix_spawn_file_actions_adddup2(&fa, 57, 58));
	spawn_probe("dup2 onto itself", SP_NEW, &fa, NULL, "f");
	posix_spawn_file_actions_destroy(&fa);
	close(56);
	close(57);
	close(54);
	FA_INIT(&fa);
	FA(posix_spawn_file_actions_adddup2(&fa, 59, 59));
	spawn_probe("dup2 onto itself, not open", SP_NEW, &fa, NULL, "f");
	posix_spawn_file_actions_destroy(&fa);

	/* chdir applies to the actions after it; the caller's cwd does not move */
	T_CHECK(mkdir("sub", 0755) == 0 && mkdir("sub2", 0755) == 0, "mkdir");
	FA_INIT(&fa);
	FA(posix_spawn_file_actions_addopen(&fa, 60, "before-chdir.txt", O_WRONLY | O_CREAT, 0600));
	FA(posix_spawn_file_actions_addchdir_np(&fa, "sub"));
	FA(posix_spawn_file_actions_addopen(&fa, 61, "after-chdir.txt", O_WRONLY | O_CREAT, 0600));
	spawn_probe("chdir", SP_NEW, &fa, NULL, "fc");
	posix_spawn_file_actions_destroy(&fa);
	obs("before-chdir.txt in .: %d, in sub: %d; after-chdir.txt in .: %d, in sub: %d", exists("before-chdir.txt"),
	    exists("sub/before-chdir.txt"), exists("after-chdir.txt"), exists("sub/after-chdir.txt"));

	fd_at(62, at("sub2"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FA_INIT(&fa);
	FA(posix_spawn_file_actions_addfchdir_np(&fa, 62));
	spawn_probe("fchdir", SP_NEW, &fa, NULL, "fc");
	posix_spawn_file_actions_destroy(&fa);
	close(62);

#if __GLIBC_PREREQ(2, 34)
	/* closefrom, and what comes before and after it */
	fd_at(63, at("f63.txt"), O_RDONLY | O_CREAT);
	fd_at(64, at("f64.txt"), O_RDONLY | O_CREAT);
	fd_at(65, at("f65.txt"), O_RDONLY | O_CREAT);
	FA_INIT(&fa);
	FA(posix_spawn_file_actions_adddup2(&fa, 63, 80));
	FA(posix_spawn_file_actions_addclosefrom_np(&fa, 64));
	FA(posix_spawn_file_actions_adddup2(&fa, 63, 70));
	spawn_probe("dup2, closefrom(64), dup2", SP_NEW, &fa, NULL, "f");
	posix_spawn_file_actions_destroy(&fa);
#else
	obs("closefrom: not in this C library");
#endif

	/* failing actions: the error is posix_spawn's; the actions after it are not run */
	FA_INIT(&fa);
	FA(posix_spawn_file_actions_addopen(&fa, 50, "made-before.txt", O_WRONLY | O_CREAT, 0600));
	FA(posix_spawn_file_actions_addopen(&fa, 51, "missing/none.txt", O_RDONLY, 0));
	FA(posix_spawn_file_actions_addopen(&fa, 52, "made-after.txt", O_WRONLY | O_CREAT, 0600));
	spawn_probe("open of a missing file", SP_NEW, &fa, NULL, "f");
	posix_spawn_file_actions_destroy(&fa);
	obs("made-before.txt: %d, made-after.txt: %d", exists("made-before.txt"), exists("made-after.txt"));

	FA_INIT(&fa);
	FA(posix_spawn_file_actions_addopen(&fa, 50, "sub", O_WRONLY, 0));
	spawn_probe("open of a directory for writing", SP_NEW, &fa, NULL, "f");
	posix_spawn_file_actions_destroy(&fa);

	FA_INIT(&fa);
	FA(posix_spawn_file_actions_addchdir_np(&fa, "missing"));
	spawn_probe("chdir to a missing directory", SP_NEW, &fa, NULL, "f");
	posix_spawn_file_actions_destroy(&fa);

	FA_INIT(&fa);
	FA(posix_spawn_file_actions_addfchdir_np(&fa, 63));
	spawn_probe("fchdir to a file", SP_NEW, &fa, NULL, "f");
	posix_spawn_file_actions_destroy(&fa);
	close(63);
	close(64);
	close(65);

	/* the same through the compat version */
#ifdef HAVE_COMPAT_SPAWN
	FA_INIT(&fa);
	FA(posix_spawn_file_actions_addopen(&fa, 50, "compat.txt", O_WRONLY | O_CREAT, 0600));
	FA(posix_spawn_file_actions_adddup2(&fa, 50, 51));
	FA(posix_spawn_file_actions_addclose(&fa, 50));
	spawn_probe("compat: open,dup2,close", SP_OLD, &fa, NULL, "f");
	posix_spawn_file_actions_destroy(&fa);
#endif
}

/*
 * addtcsetpgrp_np: made deterministic with a pty of our own as controlling
 * terminal (this role becomes a session leader).  The child is in a
 * background group when it calls tcsetpgrp(): glibc's child has every
 * signal blocked then, so SIGTTOU does not stop it; a reimplementation
 * that unblocks signals first would hang (the watchdog says so).
 */
static void role_spawn_tcsetpgrp(void)
{
#if __GLIBC_PREREQ(2, 35)
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) || unlockpt(m) || setsid() < 0) {
		obs("no pty or no new session: not covered");
		return;
	}
	int s = open(ptsname(m), O_RDWR | O_CLOEXEC); /* becomes the controlling terminal */
	T_CHECK(s >= 0 && tcgetpgrp(s) == getpgrp(), "controlling terminal");
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	FA_INIT(&fa);
	FA(posix_spawn_file_actions_addtcsetpgrp_np(&fa, s));
	ATTR_INIT(&attr, POSIX_SPAWN_SETPGROUP);
	T_CHECK(posix_spawnattr_setpgroup(&attr, 0) == 0, "setpgroup");
	const char *out = report_path("tc.probe");
	char *argv[] = { "probe", "probe", (char *)out, NULL };
	pid_t pid = -1;
	int rc = posix_spawn(&pid, g_self, &fa, &attr, argv, probe_env);
	obs("SETPGROUP 0 + addtcsetpgrp_np: %s", errname(rc));
	if (rc == 0) {
		int st;
		waitpid(pid, &st, 0);
		obs("the terminal's foreground group: %s", tcgetpgrp(s) == pid ? "the child's" : "another");
		emit_probe("the child", out, "p", pid);
	}
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	/* (in the background now: SIGTTOU would stop us; closing the master hangs up: SIGHUP) */
	signal(SIGTTOU, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	tcsetpgrp(s, getpgrp());
	close(s);
	close(m);
#else
	obs("addtcsetpgrp_np: not in this C library");
#endif
}

static void role_spawn_signals(void)
{
	posix_spawnattr_t attr;
	sigset_t set;

	set_handler(SIGUSR1, h_a, 0, 0);
	signal(SIGUSR2, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	set_handler(SIGTERM, h_b, 0, 0);
	block(SIGWINCH);
	obs("caller: USR1 handled, USR2 and HUP ignored, TERM handled, WINCH blocked");

	spawn_probe("no attributes", SP_NEW, NULL, NULL, "s");

	ATTR_INIT(&attr, 0);
	spawn_probe("attributes, no flags", SP_NEW, NULL, &attr, "s");
	posix_spawnattr_destroy(&attr);

	ATTR_INIT(&attr, POSIX_SPAWN_SETSIGMASK);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &set);
	spawn_probe("SETSIGMASK {USR1,PIPE}", SP_NEW, NULL, &attr, "s");
	posix_spawnattr_destroy(&attr);

	ATTR_INIT(&attr, POSIX_SPAWN_SETSIGMASK);
	sigemptyset(&set);
	posix_spawnattr_setsigmask(&attr, &set);
	spawn_probe("SETSIGMASK {}", SP_NEW, NULL, &attr, "s");
	posix_spawnattr_destroy(&attr);

	ATTR_INIT(&attr, POSIX_SPAWN_SETSIGDEF);
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	posix_spawnattr_setsigdefault(&attr, &set);
	spawn_probe("SETSIGDEF {HUP,USR1}", SP_NEW, NULL, &attr, "s");
	posix_spawnattr_destroy(&attr);

	ATTR_INIT(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	sigfillset(&set);
	posix_spawnattr_setsigdefault(&attr, &set);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	posix_spawnattr_setsigmask(&attr, &set);
	spawn_probe("SETSIGDEF all + SETSIGMASK {INT}", SP_NEW, NULL, &attr, "s");
	posix_spawnattr_destroy(&attr);

#ifdef HAVE_COMPAT_SPAWN
	ATTR_INIT(&attr, POSIX_SPAWN_SETSIGDEF);
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	posix_spawnattr_setsigdefault(&attr, &set);
	spawn_probe("compat: SETSIGDEF {HUP}", SP_OLD, NULL, &attr, "s");
	posix_spawnattr_destroy(&attr);
#endif
}

/* The child's mask is the calling thread's, not the process's first thread's. */
static void *spawn_from_thread(void *arg)
{
	(void)arg;
	block(SIGUSR2);
	spawn_probe("from a thread that also blocks USR2", SP_NEW, NULL, NULL, "sp");
	return NULL;
}

static void role_spawn_thread(void)
{
	pthread_t t;

	block(SIGWINCH);
	T_CHECK(pthread_create(&t, NULL, spawn_from_thread, NULL) == 0, "pthread_create");
	pthread_join(t, NULL);
}

static void role_spawn_pgroup(void)
{
	posix_spawnattr_t attr;
	int hold[2];

	/* a group of our own to join, led by a helper that waits for us */
	T_CHECK(pipe2(hold, O_CLOEXEC) == 0, "pipe");
	g_helper = fork();
	T_CHECK(g_helper >= 0, "fork");
	if (g_helper == 0) {
		char c;
		close(hold[1]);
		_exit(read(hold[0], &c, 1) < 0);
	}
	close(hold[0]);
	T_CHECK(setpgid(g_helper, g_helper) == 0, "setpgid");
	/* a group that no longer exists */
	pid_t gone = fork();
	if (gone == 0)
		_exit(0);
	waitpid(gone, NULL, 0);

	spawn_probe("no attributes", SP_NEW, NULL, NULL, "p");
	ATTR_INIT(&attr, POSIX_SPAWN_SETPGROUP);
	spawn_probe("SETPGROUP 0", SP_NEW, NULL, &attr, "p");
	posix_spawnattr_setpgroup(&attr, g_helper);
	spawn_probe("SETPGROUP helper's group", SP_NEW, NULL, &attr, "p");
	posix_spawnattr_setpgroup(&attr, gone);
	spawn_probe("SETPGROUP a group that is gone", SP_NEW, NULL, &attr, "p");
	posix_spawnattr_destroy(&attr);
	ATTR_INIT(&attr, POSIX_SPAWN_SETSID);
	spawn_probe("SETSID", SP_NEW, NULL, &attr, "p");
	posix_spawnattr_destroy(&attr);
	ATTR_INIT(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETPGROUP);
	spawn_probe("SETSID|SETPGROUP 0", SP_NEW, NULL, &attr, "p");
	posix_spawnattr_destroy(&attr);
#ifdef HAVE_COMPAT_SPAWN
	ATTR_INIT(&attr, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&attr, g_helper);
	spawn_probe("compat: SETPGROUP helper's group", SP_OLD, NULL, &attr, "p");
	posix_spawnattr_destroy(&attr);
#endif
	close(hold[1]);
	waitpid(g_helper, NULL, 0);
	g_helper = -1;
	obs_children("after");
}

/* RESETIDS: the child's effective ids become the real ones (root: run with euid/egid nobody meanwhile). */
static void role_spawn_resetids(void)
{
	posix_spawnattr_t attr;

	if (getuid() != 0) {
		obs("not root: RESETIDS not covered");
		return;
	}
	T_CHECK(chmod(g_dir, 0777) == 0, "chmod"); /* reports are created as nobody */
	ATTR_INIT(&attr, POSIX_SPAWN_RESETIDS);
	spawn_probe("root, RESETIDS", SP_NEW, NULL, &attr, "i");
	T_CHECK(setegid(65534) == 0 && seteuid(65534) == 0, "seteuid(nobody): %s", strerror(errno));
	spawn_probe("euid nobody, no RESETIDS", SP_NEW, NULL, NULL, "i");
	spawn_probe("euid nobody, RESETIDS", SP_NEW, NULL, &attr, "i");
#ifdef HAVE_COMPAT_SPAWN
	spawn_probe("euid nobody, compat RESETIDS", SP_OLD, NULL, &attr, "i");
#endif
	T_CHECK(seteuid(0) == 0 && setegid(0) == 0, "back to root: %s", strerror(errno));
	posix_spawnattr_destroy(&attr);
	obs("caller afterwards: euid=%d egid=%d", (int)geteuid(), (int)getegid());
}

/* SETSCHEDPARAM / SETSCHEDULER (glibc accepts only OTHER, FIFO and RR as policies). */
static void role_spawn_sched(void)
{
	posix_spawnattr_t attr;
	struct sched_param sp;

	ATTR_INIT(&attr, POSIX_SPAWN_SETSCHEDPARAM);
	sp.sched_priority = 0;
	posix_spawnattr_setschedparam(&attr, &sp);
	spawn_probe("SETSCHEDPARAM 0", SP_NEW, NULL, &attr, "S");
	sp.sched_priority = 5;
	posix_spawnattr_setschedparam(&attr, &sp);
	spawn_probe("SETSCHEDPARAM 5 under SCHED_OTHER", SP_NEW, NULL, &attr, "S");
	posix_spawnattr_destroy(&attr);

	ATTR_INIT(&attr, POSIX_SPAWN_SETSCHEDULER);
	obs("setschedpolicy(SCHED_BATCH): %s", errname(posix_spawnattr_setschedpolicy(&attr, SCHED_BATCH)));
	T_CHECK(posix_spawnattr_setschedpolicy(&attr, SCHED_FIFO) == 0, "setschedpolicy");
	sp.sched_priority = 1;
	posix_spawnattr_setschedparam(&attr, &sp);
	/* (root may or may not get real-time here; both runs get the same answer) */
	spawn_probe("SETSCHEDULER FIFO 1", SP_NEW, NULL, &attr, "S");
	T_CHECK(posix_spawnattr_setschedpolicy(&attr, SCHED_OTHER) == 0, "setschedpolicy");
	sp.sched_priority = 0;
	posix_spawnattr_setschedparam(&attr, &sp);
	spawn_probe("SETSCHEDULER OTHER 0", SP_NEW, NULL, &attr, "S");
	posix_spawnattr_destroy(&attr);
	ATTR_INIT(&attr, POSIX_SPAWN_SETSCHEDULER | POSIX_SPAWN_SETSCHEDPARAM);
	T_CHECK(posix_spawnattr_setschedpolicy(&attr, SCHED_RR) == 0, "setschedpolicy");
	sp.sched_priority = 2;
	posix_spawnattr_setschedparam(&attr, &sp);
	spawn_probe("SETSCHEDULER|SETSCHEDPARAM RR 2", SP_NEW, NULL, &attr, "S");
	posix_spawnattr_destroy(&attr);
	sched_getparam(0, &sp);
	obs("caller afterwards: policy=%d priority=%d", sched_getscheduler(0), sp.sched_priority);
}

/* Errors of the exec itself: the error is returned, *pid untouched, nothing left to reap. */
static void role_spawn_errors(void)
{
	char *big = malloc(200001), *longpath = malloc(5001);
	char tag[160];

	T_CHECK(big && longpath, "malloc");
	memset(big, 'x', 200000);
	big[200000] = '\0';
	memset(longpath, 'a', 5000);
	longpath[0] = '/';
	longpath[5000] = '\0';
	write_file(at("noexec.txt"), "#!/bin/sh\nexit 0\n", 0644);
	write_file(at("badinterp.sh"), "#!/sf/no/interpreter\nexit 0\n", 0755);
	write_file(at("noshebang.sh"), "exit 9\n", 0755);
	T_CHECK(mkdir("adir", 0755) == 0, "mkdir");
	static const char *const files[] = { "/sf/no/such/program", "noexec.txt", "adir",	  "",
					     "noexec.txt/x",	    "badinterp.sh", "noshebang.sh", NULL };
	char *argv[] = { "x", NULL }, *bigargv[] = { "x", big, NULL };

	for (int which = SP_NEW; which <= SP_OLDP; which++) {
#ifndef HAVE_COMPAT_SPAWN
		if (which >= SP_OLD)
			break;
#endif
		for (int i = 0; i < 8; i++) {
			const char *f = files[i] ? files[i] : longpath;
			/* spawnp would search PATH for names without '/': give them one */
			char rel[64];
			if ((which == SP_NEWP || which == SP_OLDP) && *f && !strchr(f, '/')) {
				snprintf(rel, sizeof(rel), "./%s", f);
				f = rel;
			}
			snprintf(tag, sizeof(tag), "%s(\"%.40s\")", sp_name[which], files[i] ? f : "/aaa...(5000 bytes)");
			spawn_report(tag, which, f, NULL, NULL, argv, probe_env);
		}
		snprintf(tag, sizeof(tag), "%s(self, a 200000-byte argument)", sp_name[which]);
		spawn_report(tag, which, g_self, NULL, NULL, bigargv, probe_env);
	}
	pid_t pid = -77;
	T_CHECK(posix_spawn(&pid, "/sf/no/such/program", NULL, NULL, argv, probe_env) == ENOENT && pid == -77,
		"posix_spawn of a missing program");
	free(big);
	free(longpath);
}

/* posix_spawnp's PATH search: in the caller's PATH (not envp's), EACCES only if nothing later works. */
static void role_spawn_path(void)
{
	static const char good[] = "#!/bin/sh\necho %s >which.txt\n";
	char text[128];
	static const struct { const char *path, *file; } cases[] = {
		{ "pa-empty:pa-good", "sfprog" },
		{ "pa-noexec:pa-good", "sfprog" },
		{ "pa-noexec:pa-empty", "sfprog" },
		{ "pa-empty:pa-noexec", "sfprog" },
		{ "pa-empty", "sfprog" },
		{ "pa-script:pa-good", "sfprog" }, /* no "#!": ENOEXEC ends the search; compat runs sh */
		{ NULL, "sfprog" },		   /* PATH unset: /bin:/usr/bin, not the cwd */
		{ NULL, "sh" },
		{ "", "sfprog" }, /* PATH="": the cwd */
		{ "pa-empty:", "sfprog" },
		{ "pa-good", "./sfprog" },	   /* a '/': no search */
		{ "pa-good", "pa-empty/sfprog" },
		{ "pa-good", "" },
		{ "pa-good", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
	};
	/* envp has a PATH of its own, which must not be searched */
	char *envp[] = { "PATH=/sf-envp-path-is-not-searched", NULL };
	char tag[256];
	char *saved = getenv("PATH") ? strdup(getenv("PATH")) : NULL;

	T_CHECK(mkdir("pa-empty", 0755) == 0 && mkdir("pa-noexec", 0755) == 0 && mkdir("pa-good", 0755) == 0 &&
			mkdir("pa-script", 0755) == 0,
		"mkdir");
	snprintf(text, sizeof(text), good, "pa-noexec");
	write_file(at("pa-noexec/sfprog"), text, 0644);
	snprintf(text, sizeof(text), good, "pa-good");
	write_file(at("pa-good/sfprog"), text, 0755);
	write_file(at("pa-script/sfprog"), "echo pa-script-through-sh >which.txt\n", 0755);
	for (int which = SP_NEWP; which <= SP_OLDP; which += 2) {
#ifndef HAVE_COMPAT_SPAWN
		if (which == SP_OLDP)
			break;
#endif
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			/* a program of the name in the cwd, only where the case needs one */
			int in_cwd = cases[i].path == NULL || !*cases[i].path || !strcmp(cases[i].path, "pa-empty:") ||
				     !strcmp(cases[i].file, "./sfprog");
			unlink(at("sfprog"));
			if (in_cwd) {
				snprintf(text, sizeof(text), good, "cwd");
				write_file(at("sfprog"), text, 0755);
			}
			unlink(at("which.txt"));
			if (cases[i].path)
				setenv("PATH", cases[i].path, 1);
			else
				unsetenv("PATH");
			char *argv[] = { (char *)cases[i].file, "-c", "exit 7", NULL };
			snprintf(tag, sizeof(tag), "%s(\"%.20s%s\") PATH=%s%s", sp_name[which], cases[i].file,
				 strlen(cases[i].file) > 20 ? "..." : "", cases[i].path ? cases[i].path : "(unset)",
				 in_cwd ? ", sfprog in cwd" : "");
			pid_t pid = spawn_report(tag, which, cases[i].file, NULL, NULL, argv, envp);
			if (pid > 0)
				obs_file_lines(tag, "which.txt");
		}
	}
	/* POSIX requirements, checked once more by themselves */
	pid_t pid;
	char *argv[] = { "sfprog", NULL };
	setenv("PATH", "pa-noexec:pa-good", 1);
	T_CHECK(posix_spawnp(&pid, "sfprog", NULL, NULL, argv, envp) == 0 && waitpid(pid, NULL, 0) == pid,
		"EACCES before a good entry");
	setenv("PATH", "pa-noexec:pa-empty", 1);
	T_CHECK(posix_spawnp(&pid, "sfprog", NULL, NULL, argv, envp) == EACCES, "EACCES after no good entry");
	if (saved)
		setenv("PATH", saved, 1);
	free(saved);
}

/* The GLIBC_2.2.5 versions run a file without "#!" through /bin/sh; the GLIBC_2.15 ones return ENOEXEC. */
static void role_spawn_versions(void)
{
#ifdef HAVE_COMPAT_SPAWN
	static const char script[] = "printf '%s\\n' \"$0\" \"$@\" \"SFVAR=$SFVAR\" >ns-args.txt\n"
				     "tr '\\0' '|' </proc/$$/cmdline >ns-cmdline.txt\n"
				     "exit 4\n";
	char *argv[] = { "argv-zero", "a1", "two words", NULL }, *argv1[] = { "only-zero", NULL };
	char *envp[] = { "SFVAR=from-envp", NULL };
	char tag[128];

	write_file(at("noshebang.sh"), script, 0755);
	for (int which = SP_NEW; which <= SP_OLDP; which++) {
		for (int one = 0; one < 2; one++) {
			unlink(at("ns-args.txt"));
			unlink(at("ns-cmdline.txt"));
			snprintf(tag, sizeof(tag), "%s(\"./noshebang.sh\", %s)", sp_name[which],
				 one ? "argv {only-zero}" : "argv {argv-zero, a1, two words}");
			if (spawn_report(tag, which, "./noshebang.sh", NULL, NULL, one ? argv1 : argv, envp) > 0) {
				obs_file_lines(tag, "ns-args.txt");
				obs_file_lines(tag, "ns-cmdline.txt");
			}
		}
	}
	/* with "#!" every version runs it alike */
	write_file(at("shebang.sh"), "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" >sb-args.txt\nexit 5\n", 0755);
	for (int which = SP_NEW; which <= SP_OLDP; which++) {
		unlink(at("sb-args.txt"));
		snprintf(tag, sizeof(tag), "%s(\"./shebang.sh\")", sp_name[which]);
		if (spawn_report(tag, which, "./shebang.sh", NULL, NULL, argv, envp) > 0)
			obs_file_lines(tag, "sb-args.txt");
	}
	pid_t pid = -77;
	T_CHECK(posix_spawn(&pid, "./noshebang.sh", NULL, NULL, argv, envp) == ENOEXEC && pid == -77,
		"posix_spawn@@GLIBC_2.15 of a script without #!");
	T_CHECK(compat_spawn(&pid, "./noshebang.sh", NULL, NULL, argv, envp) == 0 && waitpid(pid, NULL, 0) == pid,
		"posix_spawn@GLIBC_2.2.5 of a script without #!");
#else
	obs("no GLIBC_2.2.5 posix_spawn on this architecture");
#endif
}

/* The child's argv and environment are exactly argv and envp. */
static void role_spawn_argv_env(void)
{
	const char *out = report_path("ae.probe");
	char *argv[] = { "arbitrary zero", "probe", (char *)out, "", "two words", "tab\there", "\xc3\xbc", "--", NULL };
	char *envp[] = { "A=1", "B=two words", "EMPTY=", "NOEQUALS", "A=dup", "=noname", NULL };
	char *noenv[] = { NULL };
	char tag[96];

	for (int which = SP_NEW; which <= SP_OLDP; which++) {
#ifndef HAVE_COMPAT_SPAWN
		if (which >= SP_OLD)
			break;
#endif
		snprintf(tag, sizeof(tag), "%s, envp of 6", sp_name[which]);
		pid_t pid = spawn_report(tag, which, g_self, NULL, NULL, argv, envp);
		if (pid > 0)
			emit_probe(tag, out, "aep", pid);
		snprintf(tag, sizeof(tag), "%s, envp {NULL}", sp_name[which]);
		if ((pid = spawn_report(tag, which, g_self, NULL, NULL, argv, noenv)) > 0)
			emit_probe(tag, out, "e", pid);
		/* (Linux takes a NULL envp as empty; glibc passes it through) */
		snprintf(tag, sizeof(tag), "%s, envp NULL", sp_name[which]);
		if ((pid = spawn_report(tag, which, g_self, NULL, NULL, argv, NULL)) > 0)
			emit_probe(tag, out, "e", pid);
	}
	T_CHECK(probe_has(out, "argv[5] tab\there"), "argv");
}

/* Odds and ends: a NULL pid pointer, USEVFORK, and that the child has exec'd when posix_spawn returns. */
static void role_spawn_misc(void)
{
	char *argv[] = { "sh", "-c", "exit 3", NULL };
	posix_spawnattr_t attr;
	int st;

	int rc = posix_spawn(NULL, "/bin/sh", NULL, NULL, argv, probe_env);
	pid_t w = waitpid(-1, &st, 0);
	obs("pid pointer NULL: %s, %s, %s", errname(rc), w > 0 ? "a child to reap" : "no child", status_str(st));

	ATTR_INIT(&attr, POSIX_SPAWN_USEVFORK);
	spawn_report("POSIX_SPAWN_USEVFORK", SP_NEW, "/bin/sh", NULL, &attr, argv, probe_env);
	posix_spawnattr_destroy(&attr);

	/* (vfork semantics: the caller resumes once the child has exec'd) */
	int in[2];
	T_CHECK(pipe2(in, O_CLOEXEC) == 0, "pipe");
	posix_spawn_file_actions_t fa;
	FA_INIT(&fa);
	FA(posix_spawn_file_actions_adddup2(&fa, in[0], 0));
	char *rd[] = { "sh", "-c", "read x; exit 0", NULL };
	pid_t pid;
	rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, rd, probe_env);
	T_CHECK(rc == 0, "posix_spawn sh");
	/* (not cmdline: the caller is released inside execve(), before the new argv is in place) */
	char path[64], exe[PATH_MAX] = "", sh[PATH_MAX] = "";
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(path, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	obs("when posix_spawn returned, the child runs: %s",
	    realpath("/bin/sh", sh) && !strcmp(exe, sh) ? "/bin/sh" : strcmp(exe, g_self) ? "something else" : "this program");
	close(in[1]);
	close(in[0]);
	waitpid(pid, &st, 0);
	obs("and then: %s", status_str(st));
	posix_spawn_file_actions_destroy(&fa);
	obs_children("after");
}

/* ================================================================ the driver */

static const struct scenario {
	const char *name;
	void (*fn)(void);
} scenarios[] = {
	{ "system-status", role_system_status },
	{ "system-signals-default", role_system_signals_default },
	{ "system-signals-ignored", role_system_signals_ignored },
	{ "system-signals-handled", role_system_signals_handled },
	{ "system-child-view", role_system_child_view },
	{ "system-sigchld-ignored", role_system_sigchld_ignored },
	{ "system-e2big", role_system_e2big },
	{ "system-cancel", role_system_cancel },
	{ "system-threads", role_system_threads },
	{ "popen-modes", role_popen_modes },
	{ "popen-io", role_popen_io },
	{ "popen-child-view", role_popen_child_view },
	{ "popen-previous-streams", role_popen_previous },
	{ "popen-closed-stdio", role_popen_closed_stdio },
	{ "popen-pclose-odd", role_popen_pclose_odd },
	{ "popen-threads", role_popen_threads },
	{ "spawn-file-actions", role_spawn_file_actions },
	{ "spawn-tcsetpgrp", role_spawn_tcsetpgrp },
	{ "spawn-signals", role_spawn_signals },
	{ "spawn-thread", role_spawn_thread },
	{ "spawn-pgroup", role_spawn_pgroup },
	{ "spawn-resetids", role_spawn_resetids },
	{ "spawn-sched", role_spawn_sched },
	{ "spawn-errors", role_spawn_errors },
	{ "spawn-path", role_spawn_path },
	{ "spawn-versions", role_spawn_versions },
	{ "spawn-argv-env", role_spawn_argv_env },
	{ "spawn-misc", role_spawn_misc },
};
#define N_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

static int role_main(const char *name)
{
	const char *o = getenv("T_OBS"), *d = getenv("T_DIR");

	T_CHECK(o && d, "T_OBS and T_DIR must be set (run without arguments)");
	if (getenv("T_WANT_LIB") && !t_lib_loaded())
		t_fail("the library is not loaded");
	T_CHECK(readlink("/proc/self/exe", g_self, sizeof(g_self) - 1) > 0, "readlink /proc/self/exe");
	snprintf(g_dir, sizeof(g_dir), "%s", d);
	T_CHECK(!strchr(g_self, '\'') && !strchr(g_dir, '\''), "a quote in a path");
	T_CHECK(chdir(g_dir) == 0, "chdir %s", g_dir);
	umask(022);
	obs_file = fopen(o, "ae");
	T_CHECK(obs_file, "open %s", o);
	t_watchdog(30);
	compat_resolve();
	for (size_t i = 0; i < N_SCENARIOS; i++)
		if (!strcmp(scenarios[i].name, name)) {
			scenarios[i].fn();
			fclose(obs_file);
			return 0;
		}
	t_fail("no role %s", name);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The next line of f (without its newline) into buf; 0 at the end. */
static int next_line(FILE *f, char *buf, size_t size)
{
	if (!f || !fgets(buf, (int)size, f))
		return 0;
	buf[strcspn(buf, "\n")] = '\0';
	return 1;
}

/* Run one scenario in both configurations; 0 if they agree. */
static int compare(const char *self, const char *base, const struct scenario *sc)
{
	static char err[2][1 << 16];
	char obs_path[2][PATH_MAX], dir[PATH_MAX], env[3 * PATH_MAX];
	int st[2];

	snprintf(dir, sizeof(dir), "%s/w", base);
	for (int c = 0; c < 2; c++) {
		rm_rf(dir);
		T_CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
		snprintf(obs_path[c], sizeof(obs_path[c]), "%s/%s.%s", base, sc->name, c ? "shim" : "glibc");
		snprintf(env, sizeof(env), "T_OBS=%s T_DIR=%s SF_GONE=yes%s", obs_path[c], dir,
			 c ? " SAFEFORK_SPAWN=shim T_WANT_LIB=1" : "");
		st[c] = t_run(self, sc->name, c, NULL, env, err[c], sizeof(err[c]));
	}
	rm_rf(dir);
	for (int c = 0; c < 2; c++)
		if (st[c] != 0) {
			printf("FAIL: %s: the role %s exited with %d%s\n", sc->name,
			       c ? "with the library (SAFEFORK_SPAWN=shim)" : "WITHOUT the library (the control!)", st[c],
			       st[c] == T_FAIL ? " (its FAIL line is above)" : "");
			if (*err[c])
				printf("  its stderr:\n%s\n", err[c]);
			return 1;
		}

	FILE *f[2] = { fopen(obs_path[0], "re"), fopen(obs_path[1], "re") };
	static char line[2][8192];
	int n = 0, bad = 0;
	for (;;) {
		int more0 = next_line(f[0], line[0], sizeof(line[0])), more1 = next_line(f[1], line[1], sizeof(line[1]));
		if (!more0 && !more1)
			break;
		n++;
		if (more0 && more1 && !strcmp(line[0], line[1]))
			continue;
		printf("FAIL: %s: observation %d differs\n  glibc: %s\n  shim : %s\n", sc->name, n,
		       more0 ? line[0] : "(nothing more)", more1 ? line[1] : "(nothing more)");
		bad = 1;
		break;
	}
	for (int c = 0; c < 2; c++)
		if (f[c])
			fclose(f[c]);
	if (!bad && n == 0) {
		printf("FAIL: %s: no observations\n", sc->name);
		bad = 1;
	}
	if (bad) {
		for (int c = 0; c < 2; c++)
			if (*err[c])
				printf("  stderr %s:\n%s\n", c ? "shim" : "glibc", err[c]);
		return 1;
	}
	t_note("%s: %d observations, the same", sc->name, n);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "probe"))
		return probe_main(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "-c") && getenv("T_SHELL_REPORT") && getenv("T_REAL_SH"))
		return shell_main(argc, argv);
	if (argc > 1)
		return role_main(argv[1]);

	t_watchdog(120);
	t_lib_path();
	/*
	 * make starts us with posix_spawn, which leaves glibc's internal signals
	 * 32 and 33 ignored; back to default, so that the roles see what their
	 * own spawns do (glibc's sigaction() refuses them: the raw system call).
	 */
	for (int sig = 32; sig <= 33; sig++) {
		struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } ksa = { SIG_DFL, 0, NULL, 0 };
		syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(ksa.mask));
	}
	/* descriptors we were given stay out of the roles' children */
	for (int fd = 3; fd < 1024; fd++)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	char base[] = "/tmp/spawn-semantics.XXXXXX";
	T_CHECK(mkdtemp(base), "mkdtemp: %s", strerror(errno));
	T_CHECK(chmod(base, 0755) == 0, "chmod"); /* (a probe may run as nobody) */
	int bad = 0;
	for (size_t i = 0; i < N_SCENARIOS; i++)
		bad |= compare(argv[0], base, &scenarios[i]);
	if (bad || getenv("T_KEEP")) /* T_KEEP=1: keep them to read */
		printf("observations kept in %s\n", base);
	else
		rm_rf(base);
	if (bad)
		return T_FAIL;
	t_pass("%zu scenarios: glibc and the library with SAFEFORK_SPAWN=shim agree", N_SCENARIOS);
}
