/*
 * launcher: the safefork launcher (tools/safefork) through real runs.
 * It runs this program again as its command: role "env" prints what the
 * command got (environment, arguments, the library loaded or not) and exits
 * with a given status; role "case" is the standard scenario (a registered
 * range the vmsplice device holds across a fork), whose verdict shows the
 * mode the launcher passed: copy coherent, off stale, and stale without the
 * launcher (the control).
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"

extern char **environ;

static const char *const vars[] = { "LD_PRELOAD",	  "SAFEFORK_MODE",   "SAFEFORK_LOG",
				    "SAFEFORK_LOG_FORMAT", "SAFEFORK_REPORT", "SAFEFORK_DEBUG" };

static int role_env(int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv(vars[i]);
		printf("%s=%s\n", vars[i], v ? v : "(unset)");
	}
	printf("loaded=%d\n", t_lib_loaded());
	for (int i = 3; i < argc; i++)
		printf("arg=%s\n", argv[i]);
	fflush(stdout);
	return atoi(argv[2]);
}

static int role_case(void)
{
	size_t len = 16 * 4096;
	struct t_case c = { .reg = t_map(len), .reg_len = len, .register_it = 1 };
	return t_case_run(&c);
}

/* ---- running the launcher ---- */
static const char *self_path, *launcher;
static char out[16384], err[16384];
static pid_t last_pid; /* of the last run: the command's pid too (the launcher execs it) */

/* Our environment without LD_PRELOAD and SAFEFORK_*, plus the given assignments. */
static char **make_env(const char *const *extra)
{
	static char *envp[600];
	int n = 0;

	for (char **e = environ; *e && n < 500; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11) && strncmp(*e, "SAFEFORK_", 9))
			envp[n++] = *e;
	/* Under the sanitizers the instrumented runtime must stay first (the launcher keeps it
	 * there): it is in LD_PRELOAD unless the caller gives LD_PRELOAD, with it spelled in. */
	static char asan[PATH_MAX + 16];
	const char *prefix = getenv("T_PRELOAD_PREFIX");
	int caller_preload = 0;
	for (const char *const *x = extra; x && *x; x++)
		caller_preload |= !strncmp(*x, "LD_PRELOAD=", 11);
	if (prefix && *prefix && !caller_preload) {
		snprintf(asan, sizeof(asan), "LD_PRELOAD=%s", prefix);
		envp[n++] = asan;
	}
	for (; extra && *extra && n < 590; extra++)
		envp[n++] = (char *)*extra;
	envp[n] = NULL;
	return envp;
}

static void slurp(int fd, char *buf, size_t size)
{
	size_t have = 0;
	ssize_t r;
	while ((r = read(fd, buf + have, size - 1 - have)) > 0 || (r < 0 && errno == EINTR))
		if (r > 0)
			have += (size_t)r;
	buf[have] = 0;
	close(fd);
}

/* Run argv (argv[0] is the program) with env; stdout, stderr into out, err; returns the status (or -signal). */
static int run(const char *const *argv, const char *const *env)
{
	int o[2], e[2];
	char **envp = make_env(env);

	fflush(stdout);
	if (pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0)
		t_fail("pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		t_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(o[1], 1);
		dup2(e[1], 2);
		execve(argv[0], (char **)argv, envp);
		_exit(99);
	}
	last_pid = pid;
	close(o[1]);
	close(e[1]);
	/* both outputs are small: read stdout to its end, then stderr */
	slurp(o[0], out, sizeof(out));
	slurp(e[0], err, sizeof(err));
	return t_wait(pid);
}

#define L(...) ((const char *const[]){ launcher, __VA_ARGS__, NULL })
#define ENV(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void expect_line(const char *what, const char *line)
{
	char want[PATH_MAX * 2];
	snprintf(want, sizeof(want), "%s\n", line);
	T_CHECK(strstr(out, want), "%s: no line \"%s\" in the command's output:\n%s%s", what, line, out, err);
}

/* The library the launcher should find in the build tree. */
static char build_lib[PATH_MAX];

/* out = the canonical directory of path, then "/" name (as the launcher names the library). */
static void canon_dir(const char *path, const char *name, char *out)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(path, '/');

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	T_CHECK(realpath(dir, real), "realpath %s: %s", dir, strerror(errno));
	T_CHECK(strlen(real) + 1 + strlen(name) < PATH_MAX, "path too long");
	strcat(strcat(strcpy(out, real), "/"), name);
}

static void check_env_runs(void)
{
	char line[PATH_MAX + 64];
	int st;

	/* No option: the library preloaded, nothing else set, the command's status returned. */
	st = run(L(self_path, "env", "0"), NULL);
	T_CHECK(st == 0, "plain run: status %d (%s)", st, err);
	snprintf(line, sizeof(line), "LD_PRELOAD=%s", build_lib);
	if (!getenv("T_PRELOAD_PREFIX") || !*getenv("T_PRELOAD_PREFIX"))
		expect_line("plain run: the build tree's library, alone in LD_PRELOAD", line);
	expect_line("plain run", "loaded=1");
	expect_line("plain run", "SAFEFORK_MODE=(unset)");
	expect_line("plain run", "SAFEFORK_DEBUG=(unset)");
	T_CHECK(!*err, "plain run: the launcher or library spoke: %s", err);

	/* Exit status and death by a signal are the command's own (exec, not a child). */
	st = run(L(self_path, "env", "42"), NULL);
	T_CHECK(st == 42, "exit status 42 came back as %d", st);
	st = run(L("/bin/sh", "-c", "kill -TERM $$"), NULL);
	T_CHECK(st == -SIGTERM, "a command killed by SIGTERM came back as %d", st);

	/* Every option becomes its variable. */
	st = run(L("--mode=dontfork", "--log=syslog", "--json", "--report", "--debug", "--", self_path, "env", "0"),
		 NULL);
	T_CHECK(st == 0, "all options: status %d (%s)", st, err);
	expect_line("--mode=dontfork", "SAFEFORK_MODE=dontfork");
	expect_line("--log=syslog", "SAFEFORK_LOG=syslog");
	expect_line("--json", "SAFEFORK_LOG_FORMAT=json");
	expect_line("--report", "SAFEFORK_REPORT=1");
	expect_line("--debug", "SAFEFORK_DEBUG=1");
	/* An option's value as the next argument; an option overrides the environment. */
	st = run(L("--mode", "log", self_path, "env", "0"), ENV("SAFEFORK_MODE=copy"));
	T_CHECK(st == 0, "--mode log: status %d (%s)", st, err);
	expect_line("--mode log (separate value, over SAFEFORK_MODE=copy)", "SAFEFORK_MODE=log");
	/* A relative log path is made absolute (every process of the job writes to the same file). */
	char cwd[PATH_MAX];
	T_CHECK(getcwd(cwd, sizeof(cwd)), "getcwd");
	st = run(L("--log=sf-launcher.%p.log", self_path, "env", "0"), NULL);
	snprintf(line, sizeof(line), "sf-launcher.%d.log", (int)last_pid);
	unlink(line); /* in case the library opens its log before it has anything to say */
	snprintf(line, sizeof(line), "SAFEFORK_LOG=%s/sf-launcher.%%p.log", cwd);
	expect_line("--log with a relative path", line);

	/* Everything after the command is the command's, options included; "--" ends ours. */
	st = run(L(self_path, "env", "0", "--debug", "--mode=off"), NULL);
	T_CHECK(st == 0, "options after the command: status %d", st);
	expect_line("options after the command are its arguments", "arg=--debug");
	expect_line("options after the command are its arguments", "arg=--mode=off");
	expect_line("options after the command are not the launcher's", "SAFEFORK_DEBUG=(unset)");
	st = run(L("--", "--debug"), NULL);
	T_CHECK(st == 127 && strstr(err, "safefork: cannot run --debug"),
		"after --, \"--debug\" is the command (not found: 127): status %d, %s", st, err);
}

static void check_preload(void)
{
	char want[PATH_MAX * 3], set[PATH_MAX * 3];
	Dl_info di;

	/* A library already preloaded stays, after ours (the C library: loading it again changes
	 * nothing; found through a function no sanitizer intercepts). */
	T_CHECK(dladdr((void *)gnu_get_libc_version, &di) && di.dli_fname, "dladdr(gnu_get_libc_version)");
	const char *prefix = getenv("T_PRELOAD_PREFIX");
	int st;
	if (prefix && *prefix) { /* the sanitizer runtime must come first for the launcher itself too */
		snprintf(set, sizeof(set), "LD_PRELOAD=%s %s", prefix, di.dli_fname);
		st = run(L(self_path, "env", "0"), ENV(set));
		T_CHECK(st == 0, "with LD_PRELOAD set: status %d (%s)", st, err);
		snprintf(want, sizeof(want), "LD_PRELOAD=%s:%s:%s", prefix, build_lib, di.dli_fname);
		expect_line("the sanitizer runtime first, then ours, then the one already there", want);
	} else {
		snprintf(set, sizeof(set), "LD_PRELOAD=%s", di.dli_fname);
		st = run(L(self_path, "env", "0"), ENV(set));
		T_CHECK(st == 0, "with LD_PRELOAD set: status %d (%s)", st, err);
		snprintf(want, sizeof(want), "LD_PRELOAD=%s:%s", build_lib, di.dli_fname);
		expect_line("ours prepended to LD_PRELOAD", want);
		/* already there: not twice; a (here missing) sanitizer runtime keeps the first place */
		snprintf(set, sizeof(set), "LD_PRELOAD=/nonexistent/libasan.so.8 %s:%s", build_lib, di.dli_fname);
		st = run(L(self_path, "env", "0"), ENV(set));
		T_CHECK(st == 0, "LD_PRELOAD with ours and a sanitizer runtime: status %d (%s)", st, err);
		snprintf(want, sizeof(want), "LD_PRELOAD=/nonexistent/libasan.so.8:%s:%s", build_lib, di.dli_fname);
		expect_line("sanitizer runtime first, ours once", want);
	}

	/* SAFEFORK_LIBRARY names the library (here the .so link next to the real file). */
	const char *lib = t_lib_path();
	snprintf(set, sizeof(set), "SAFEFORK_LIBRARY=%s", lib);
	st = run(L(self_path, "env", "0"), ENV(set));
	char canon[PATH_MAX];
	canon_dir(lib, strrchr(lib, '/') + 1, canon);
	snprintf(want, sizeof(want), "LD_PRELOAD=%s%s%s\n", prefix && *prefix ? prefix : "", prefix && *prefix ? ":" : "",
		 canon);
	T_CHECK(st == 0 && strstr(out, want), "SAFEFORK_LIBRARY=%s: status %d, %s%s", lib, st, out, err);
	st = run(L(self_path, "env", "0"), ENV("SAFEFORK_LIBRARY=/nonexistent/libsafefork.so.0"));
	T_CHECK(st == 125 && !strstr(out, "loaded=") && strstr(err, "safefork: SAFEFORK_LIBRARY=/nonexistent"),
		"a missing SAFEFORK_LIBRARY: status %d (want 125), %s", st, err);
}

/* An installed copy finds the library under its own root: DESTDIR trees, dpkg -x, images. */
static void check_installed_layout(void)
{
	char root[] = "/tmp/sf-launcher-root.XXXXXX", path[PATH_MAX], cmd[PATH_MAX * 3];

	T_CHECK(mkdtemp(root), "mkdtemp");
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s%s' '%s%s' && cp '%s' '%s%s/safefork' && cp '%s' '%s%s/%s'", root,
		 SF_BINDIR, root, SF_LIBDIR, launcher, root, SF_BINDIR, build_lib, root, SF_LIBDIR, SF_SONAME);
	T_CHECK(system(cmd) == 0, "%s", cmd);
	snprintf(path, sizeof(path), "%s%s/safefork", root, SF_BINDIR);
	int st = run(((const char *const[]){ path, self_path, "env", "0", NULL }), NULL);
	char want[PATH_MAX * 2];
	snprintf(want, sizeof(want), "%s%s/%s", root, SF_LIBDIR, SF_SONAME);
	int found = st == 0 && strstr(out, want) && strstr(out, "loaded=1\n");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	T_CHECK(system(cmd) == 0, "%s", cmd);
	T_CHECK(found, "an installed copy under %s: status %d, wanted %s in\n%s%s", root, st, want, out, err);
}

static void check_modes(void)
{
	/* The control: without the launcher the device sends stale data. */
	int st = t_run(self_path, "case", 0, NULL, NULL, NULL, 0);
	if (st == T_SKIP)
		t_skip("the scenario cannot run here");
	T_CHECK(st == T_STALE, "control without the library: %d, expected stale (%d)", st, T_STALE);
	st = run(L("--mode=off", self_path, "case"), NULL);
	T_CHECK(st == T_STALE, "--mode=off: %d, expected stale (%d) (%s)", st, T_STALE, err);
	st = run(L("--mode=copy", self_path, "case"), NULL);
	T_CHECK(st == T_COHERENT, "--mode=copy: %d, expected coherent (%d) (%s)", st, T_COHERENT, err);
	st = run(L(self_path, "case"), NULL);
	T_CHECK(st == T_COHERENT, "no --mode (auto: explicit ranges copied): %d (%s)", st, err);
	T_CHECK(!strstr(err, "safefork:"), "the library spoke while all was well: %s", err);
	/* log: the fork is left unsafe and said so */
	st = run(L("--mode=log", self_path, "case"), NULL);
	T_CHECK(st == T_STALE && strstr(err, "safefork:"), "--mode=log: %d, expected stale and a report: %s", st,
		err);
	/* --report: the protected fork's call site is reported; --json: as one JSON object per line */
	st = run(L("--mode=copy", "--report", self_path, "case"), NULL);
	T_CHECK(st == T_COHERENT && strstr(err, "safefork: ") && strstr(err, " via fork"),
		"--report: %d, expected coherent and a call-site report: %s", st, err);
	st = run(L("--mode=log", "--json", self_path, "case"), NULL);
	T_CHECK(st == T_STALE && !strncmp(err, "{\"", 2) && strstr(err, "\"entry\":\"fork\"") &&
			!strstr(err, "\nsafefork:"),
		"--json: %d, expected stale and JSON lines only: %s", st, err);

	/* --debug: the probe's findings; with --log=FILE they go to the file (%p: the command's pid). */
	st = run(L("--debug", self_path, "case"), NULL);
	T_CHECK(st == T_COHERENT && strstr(err, "safefork: kernel") && strstr(err, "early COW"),
		"--debug: %d, no probe findings on stderr: %s", st, err);
	char dir[] = "/tmp/sf-launcher-log.XXXXXX", dest[PATH_MAX], arg[PATH_MAX + 16], file[PATH_MAX + 32];
	T_CHECK(mkdtemp(dir), "mkdtemp");
	snprintf(dest, sizeof(dest), "%s/run.%%p", dir);
	snprintf(arg, sizeof(arg), "--log=%s", dest);
	const char *const argv[] = { launcher, "--debug", arg, self_path, "case", NULL };
	int o[2];
	T_CHECK(pipe2(o, O_CLOEXEC) == 0, "pipe");
	pid_t pid = fork();
	if (pid == 0) {
		dup2(o[1], 2);
		execve(launcher, (char **)argv, make_env(NULL));
		_exit(99);
	}
	close(o[1]);
	slurp(o[0], err, sizeof(err));
	st = t_wait(pid);
	snprintf(file, sizeof(file), "%s/run.%d", dir, (int)pid);
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	T_CHECK(fd >= 0, "--log=%s: no file %s (status %d, stderr: %s)", dest, file, st, err);
	slurp(fd, out, sizeof(out));
	unlink(file);
	rmdir(dir);
	T_CHECK(st == T_COHERENT && strstr(out, "safefork: kernel") && !strstr(err, "safefork:"),
		"--debug --log=FILE: status %d, file: %s, stderr: %s", st, out, err);
}

static void check_probe(void)
{
	struct utsname u;
	int st = run(L("--probe"), NULL);

	T_CHECK(st == 0, "--probe: status %d (%s)", st, err);
	T_CHECK(uname(&u) == 0, "uname");
	T_CHECK(strstr(out, u.release), "--probe does not name the kernel %s:\n%s", u.release, out);
	T_CHECK(strstr(out, build_lib), "--probe does not name the library %s:\n%s", build_lib, out);
	T_CHECK(strstr(out, "early COW of pinned pages at fork (5.9+): ") && strstr(out, "hugetlb early COW") &&
			strstr(out, "reliable pins"),
		"--probe: findings missing:\n%s", out);
	/* What auto does follows from the findings: kernel pins are left to a kernel with both early COWs. */
	int both = strstr(out, "(5.9+): yes") && strstr(out, "(5.12+): yes");
	expect_line("--probe", "mode: auto");
	expect_line("--probe, auto", "  ranges registered with safefork_register(): copy (the child gets a private "
				     "copy; the parent keeps its pages)");
	T_CHECK(strstr(out, both ? "kernel pins (verbs, io_uring, SAFEFORK_KERNEL_PIN): nothing: left to the kernel"
				 : "kernel pins (verbs, io_uring, SAFEFORK_KERNEL_PIN): copy"),
		"--probe: auto's choice for kernel pins does not follow the findings:\n%s", out);
	/* The kernel's answer agrees with what the version promises where the probe ran. */
	t_note("%s", out);

	st = run(L("--mode=off", "--probe"), NULL);
	T_CHECK(st == 0 && strstr(out, "mode: off\n") &&
			strstr(out, "kernel pins (verbs, io_uring, SAFEFORK_KERNEL_PIN): nothing"),
		"--mode=off --probe: %d\n%s%s", st, out, err);
	st = run(L("--probe", "ls"), NULL);
	T_CHECK(st == 2 && strstr(err, "usage:"), "--probe with a command: %d (want 2) %s", st, err);
}

static void check_usage(void)
{
	const char *const *bad[] = {
		L("--bogus", "true"), L("-x", "true"),	  L("--mode=fast", "true"), L("--mode"),
		L("--log=", "true"),  L("--json=1", "true"), L(NULL),
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = run(bad[i], NULL);
		T_CHECK(st == 2 && !strncmp(err, "safefork: ", 10) && strstr(err, "\nusage: safefork") && !*out,
			"bad command line %zu (%s): status %d (want 2), stderr: %s", i, bad[i][1] ? bad[i][1] : "none",
			st, err);
	}
	int st = run(L("--help"), NULL);
	T_CHECK(st == 0 && strstr(out, "usage: safefork"), "--help: %d", st);
	for (const char *const *o = (const char *const[]){ "--mode=", "--log=", "--json", "--report", "--debug",
							   "--probe", "--version", NULL };
	     *o; o++)
		T_CHECK(strstr(out, *o), "--help does not mention %s", *o);
	st = run(L("--version"), NULL);
	T_CHECK(st == 0 && strstr(out, PACKAGE_VERSION), "--version: %d, %s", st, out);
	/* a command that is not executable: 126 */
	char f[] = "/tmp/sf-launcher-noexec.XXXXXX";
	int fd = mkstemp(f);
	T_CHECK(fd >= 0, "mkstemp");
	close(fd);
	st = run(L(f), NULL);
	unlink(f);
	T_CHECK(st == 126 && strstr(err, "safefork: cannot run"), "a non-executable command: %d (want 126): %s", st,
		err);
	st = run(L("sf-launcher-no-such-command"), NULL);
	T_CHECK(st == 127 && strstr(err, "safefork: cannot run sf-launcher-no-such-command"),
		"a missing command: %d (want 127): %s", st, err);
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "env"))
		return role_env(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "case"))
		return role_case();

	static char self[PATH_MAX];
	T_CHECK(realpath("/proc/self/exe", self), "realpath /proc/self/exe");
	self_path = self;
	launcher = getenv("SAFEFORK_LAUNCHER");
	if (!launcher || access(launcher, X_OK) != 0)
		t_skip("no launcher (SAFEFORK_LAUNCHER=%s): run from make check", launcher ? launcher : "");
	/* the library the launcher should find: SF_SONAME beside the test environment's SAFEFORK_LIB */
	canon_dir(t_lib_path(), SF_SONAME, build_lib);
	T_CHECK(access(build_lib, R_OK) == 0, "the built library %s: %s", build_lib, strerror(errno));

	check_usage();
	check_env_runs();
	check_preload();
	check_installed_layout();
	check_probe();
	check_modes();
	t_pass("every launcher option, exit status, LD_PRELOAD and library resolution as documented");
}
