/*
 * safefork - run a command with libsafefork preloaded.
 *
 *   safefork [--mode=MODE] [--log=DEST] [--json] [--report] [--debug] [--] command [args...]
 *   safefork [--mode=MODE] --probe
 *
 * The options become the library's environment variables, the library is
 * put first in LD_PRELOAD (after a sanitizer runtime, which must stay
 * first), and the command replaces this process (execvp): its pid, signals
 * and exit status are the command's own, which is what mpirun, srun and
 * container runtimes expect of a wrapper.  See safefork(1).
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "safefork.h"
#include "preload.h"

/* Set by the build: where `make install` puts the library and this program. */
#ifndef SF_LIBDIR
#error SF_LIBDIR, SF_BINDIR and SF_SONAME come from the Makefile
#endif

/* Exit statuses of our own (those of env(1) and timeout(1)); the command's otherwise. */
enum { EXIT_USAGE = 2, EXIT_LAUNCHER = 125, EXIT_CANNOT_EXEC = 126, EXIT_NOT_FOUND = 127 };

static const char usage_line[] =
	"usage: safefork [--mode=MODE] [--log=DEST] [--json] [--report] [--debug] [--] command [args...]\n"
	"       safefork [--mode=MODE] --probe | --help | --version\n";

static void help(void)
{
	fputs(usage_line, stdout);
	fputs("\nRun command with libsafefork preloaded: forks keep memory pinned for device DMA\n"
	      "(RDMA, io_uring) coherent with the parent.\n\n"
	      "  --mode=MODE  auto (default), copy, dontfork, wipe, log or off   (SAFEFORK_MODE)\n"
	      "  --log=DEST   stderr, syslog or a file path (%p: the pid)       (SAFEFORK_LOG)\n"
	      "  --json       reports as one JSON object per line         (SAFEFORK_LOG_FORMAT=json)\n"
	      "  --report     report every unsafe fork site, also when made safe (SAFEFORK_REPORT=1)\n"
	      "  --debug      the kernel probe's findings, a line per protected fork (SAFEFORK_DEBUG=1)\n"
	      "  --probe      print what this kernel protects by itself and what the mode does\n"
	      "  --help, --version\n\n"
	      "The library is found through SAFEFORK_LIBRARY if set, else next to this program.\n"
	      "Exit status: the command's; 125 the library cannot be found, 126 the command\n"
	      "cannot run, 127 it is not found, 2 a bad option.  See safefork(1).\n",
	      stdout);
}

static void say(const char *fmt, va_list ap)
{
	fputs("safefork: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* A bad command line: one line saying why, the usage, status 2. */
__attribute__((noreturn, format(printf, 1, 2))) static void usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	fputs(usage_line, stderr);
	exit(EXIT_USAGE);
}

__attribute__((noreturn, format(printf, 2, 3))) static void die(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	exit(status);
}

static const char *const modes[] = { "auto", "copy", "dontfork", "wipe", "log", "off" };

static const char *mode_name(enum safefork_mode m)
{
	return (unsigned)m < sizeof(modes) / sizeof(modes[0]) ? modes[m] : "?";
}

static int is_file(const char *path)
{
	return access(path, R_OK) == 0;
}

/*
 * path made absolute, with its directory canonical but the file name kept:
 * the soname link (libsafefork.so.0), not the file it points to today, so
 * an environment that outlives an upgrade still names the library.
 */
static char *absolute(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX], real[PATH_MAX], *res;

	snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	if (!realpath(dir, real) || !(res = malloc(strlen(real) + strlen(slash) + 1)))
		return NULL;
	sprintf(res, "%s%s", strcmp(real, "/") ? real : "", slash);
	return res;
}

/*
 * The library to preload, as an absolute path (malloc'd):
 *   1. SAFEFORK_LIBRARY, when set (a name without '/' is left to the
 *      dynamic linker's search, as LD_PRELOAD itself would);
 *   2. installed: this program is <root>BINDIR/safefork, the library
 *      <root>LIBDIR/SONAME; <root> is empty for an installed copy, and a
 *      staging directory for a DESTDIR or `dpkg -x` tree;
 *   3. the build tree: this program is <builddir>/tools/safefork, the
 *      library <builddir>/src/.libs/SONAME (never looked for from an
 *      installed copy: nothing beside a bin directory is trusted);
 *   4. LIBDIR/SONAME.
 */
static char *find_library(void)
{
	char exe[PATH_MAX], cand[PATH_MAX + 64], *res;
	const char *env = getenv("SAFEFORK_LIBRARY");
	ssize_t n;

	if (env && *env) {
		if (!strchr(env, '/'))
			return strdup(env);
		snprintf(cand, sizeof(cand), "%s%s", env[0] == '/' ? "" : "./", env);
		if (!is_file(cand) || !(res = absolute(cand)))
			die(EXIT_LAUNCHER, "SAFEFORK_LIBRARY=%s: %s", env, strerror(errno));
		return res;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		const char *suffix = SF_BINDIR "/safefork";
		size_t sl = strlen(suffix);

		exe[n] = 0;
		if ((size_t)n >= sl && !strcmp(exe + n - sl, suffix)) {
			snprintf(cand, sizeof(cand), "%.*s%s/%s", (int)((size_t)n - sl), exe, SF_LIBDIR, SF_SONAME);
			if (is_file(cand) && (res = absolute(cand)))
				return res;
		} else {
			*strrchr(exe, '/') = 0;
			const char *dir = strrchr(exe, '/');
			if (dir && !strcmp(dir, "/tools")) {
				snprintf(cand, sizeof(cand), "%.*s/src/.libs/%s", (int)(dir - exe), exe, SF_SONAME);
				if (is_file(cand) && (res = absolute(cand)))
					return res;
			}
		}
	}
	snprintf(cand, sizeof(cand), "%s/%s", SF_LIBDIR, SF_SONAME);
	if (is_file(cand))
		return strdup(cand);
	die(EXIT_LAUNCHER, "%s not found in %s (is libsafefork installed? SAFEFORK_LIBRARY names it)", SF_SONAME,
	    SF_LIBDIR);
}

static void set(const char *name, const char *value)
{
	if (setenv(name, value, 1) < 0)
		die(EXIT_LAUNCHER, "setenv %s: %s", name, strerror(errno));
}

/* --log=DEST: a relative path is made absolute, so every process of the job writes where it was meant. */
static void set_log(const char *dest)
{
	if (!strcmp(dest, "stderr") || !strcmp(dest, "syslog") || dest[0] == '/') {
		set("SAFEFORK_LOG", dest);
		return;
	}
	char cwd[PATH_MAX], *abs;
	if (!getcwd(cwd, sizeof(cwd)) || !(abs = malloc(strlen(cwd) + strlen(dest) + 2)))
		die(EXIT_LAUNCHER, "--log=%s: cannot make the path absolute", dest);
	sprintf(abs, "%s/%s", cwd, dest);
	set("SAFEFORK_LOG", abs);
	free(abs);
}

static const char *yes_no(int v)
{
	return v ? "yes" : "NO";
}

static const char *policy(enum safefork_mode p, int kernel_pins)
{
	switch (p) {
	case SAFEFORK_MODE_COPY: return "copy (the child gets a private copy; the parent keeps its pages)";
	case SAFEFORK_MODE_DONTFORK: return "dontfork (the child does not get the pages)";
	case SAFEFORK_MODE_WIPE: return "wipe (the child gets zeros)";
	case SAFEFORK_MODE_LOG: return "log (left copy-on-write, reported)";
	case SAFEFORK_MODE_OFF: return kernel_pins ? "nothing: left to the kernel's early COW" : "nothing";
	default: return "?";
	}
}

/* --probe: load the library here (not preloaded: nothing of ours is interposed) and ask it. */
static int probe(const char *lib)
{
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		die(EXIT_LAUNCHER, "cannot load %s: %s", lib, dlerror());
	int (*probe_fn)(struct safefork_kernel *, size_t) =
		(int (*)(struct safefork_kernel *, size_t))dlvsym(h, "safefork_probe", "SAFEFORK_1.0");
	const char *(*version_fn)(void) = (const char *(*)(void))dlvsym(h, "safefork_version", "SAFEFORK_1.0");
	struct safefork_kernel k;
	struct utsname u;

	if (!probe_fn || !version_fn)
		die(EXIT_LAUNCHER, "%s has no safefork_probe@SAFEFORK_1.0 (an older libsafefork?)", lib);
	if (probe_fn(&k, sizeof(k)) < 0)
		die(EXIT_LAUNCHER, "safefork_probe: %s", strerror(errno));
	if (uname(&u) < 0)
		strcpy(u.release, "?");
	printf("library: %s (libsafefork %s)\n", lib, version_fn());
	printf("kernel: %s %s\n", u.sysname, u.release);
	printf("  early COW of pinned pages at fork (5.9+): %s (%s)\n", yes_no(k.early_cow), k.early_cow_how);
	if (k.probe_failed)
		printf("  probe could not run: %s\n", k.probe_failed);
	printf("  hugetlb early COW (5.12+): %s (%s)\n", yes_no(k.hugetlb_early_cow), k.hugetlb_how);
	printf("  reliable pins of pages shared with a child (5.19+): %s (kernel version)\n",
	       yes_no(k.reliable_pins));
	printf("mode: %s\n", mode_name(k.mode));
	printf("  ranges registered with safefork_register(): %s\n", policy(k.explicit_policy, 0));
	printf("  kernel pins (verbs, io_uring, SAFEFORK_KERNEL_PIN): %s\n", policy(k.kernel_pin_policy, 1));
	return fflush(stdout) == 0 ? 0 : EXIT_LAUNCHER;
}

int main(int argc, char **argv)
{
	enum { OPT_PROBE = 256, OPT_JSON, OPT_REPORT };
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },  { "log", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, OPT_JSON },   { "report", no_argument, NULL, OPT_REPORT },
		{ "debug", no_argument, NULL, 'd' },       { "probe", no_argument, NULL, OPT_PROBE },
		{ "help", no_argument, NULL, 'h' },        { "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, do_probe = 0;

	opterr = 0;
	/* '+': the first non-option is the command; whatever follows is its own. */
	while ((c = getopt_long(argc, argv, "+:m:l:dhV", opts, NULL)) != -1) {
		switch (c) {
		case 'm': {
			unsigned i = 0;
			while (i < sizeof(modes) / sizeof(modes[0]) && strcmp(optarg, modes[i]))
				i++;
			if (i == sizeof(modes) / sizeof(modes[0]))
				usage_error("--mode=%s: not auto, copy, dontfork, wipe, log or off", optarg);
			set("SAFEFORK_MODE", optarg);
			break;
		}
		case 'l':
			if (!*optarg)
				usage_error("--log needs a destination");
			set_log(optarg);
			break;
		case OPT_JSON: set("SAFEFORK_LOG_FORMAT", "json"); break;
		case OPT_REPORT: set("SAFEFORK_REPORT", "1"); break;
		case 'd': set("SAFEFORK_DEBUG", "1"); break;
		case OPT_PROBE: do_probe = 1; break;
		case 'h': help(); return 0;
		case 'V': printf("safefork (libsafefork) %s\n", PACKAGE_VERSION); return 0;
		case ':': usage_error("%s needs a value", argv[optind - 1]);
		default: /* an unknown option, or a value given to one that takes none */
			if (!strncmp(argv[optind - 1], "--", 2))
				usage_error("bad option %s", argv[optind - 1]);
			usage_error("bad option -%c", optopt);
		}
	}

	if (do_probe && optind < argc)
		usage_error("--probe runs no command (%s given)", argv[optind]);
	if (!do_probe && optind >= argc)
		usage_error("no command given");
	char *lib = find_library();
	if (strpbrk(lib, " :"))
		die(EXIT_LAUNCHER, "%s: a path with a space or colon cannot go in LD_PRELOAD", lib);
	if (do_probe)
		return probe(lib);

	char *preload = sf_preload_value(lib, getenv("LD_PRELOAD"));
	if (!preload)
		die(EXIT_LAUNCHER, "out of memory");
	set("LD_PRELOAD", preload);
	execvp(argv[optind], argv + optind);
	int e = errno;
	die(e == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC, "cannot run %s: %s", argv[optind], strerror(e));
}
