/*
 * quiet: a preloaded library is in every process of a job.  When all is
 * well it prints nothing (parent or child), leaves no descriptor open in
 * children, and changes neither errno nor the signal mask a caller sees.
 * Bad environment values get exactly one line starting "safefork:".
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"

static int role(void)
{
	size_t len = 16 * 4096;
	char *buf = t_map(len);
	sigset_t mask, now;

	memset(buf, 1, len);
	T_CHECK(t_register(buf, len, 0) == 0, "register");
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int fds = t_fd_count();
	for (int i = 0; i < 3; i++) {
		errno = 4242;
		pid_t pid = fork();
		int e = errno;
		if (pid == 0) {
			sigprocmask(SIG_BLOCK, NULL, &now);
			if (e != 4242 || t_fd_count() != fds || !sigismember(&now, SIGUSR2) || sigismember(&now, SIGUSR1))
				_exit(2);
			_exit(0);
		}
		T_CHECK(e == 4242, "errno changed by fork: %d", e);
		T_CHECK(t_wait(pid) == 0, "child saw a changed errno, fd set or signal mask");
		sigprocmask(SIG_BLOCK, NULL, &now);
		T_CHECK(sigismember(&now, SIGUSR2) && !sigismember(&now, SIGUSR1), "parent signal mask changed");
		T_CHECK(t_fd_count() == fds, "parent fd count changed");
	}
	return 0;
}

static void expect_line(const char *self, const char *env, const char *want)
{
	char err[4096];
	int st = t_run(self, "role", 1, NULL, env, err, sizeof(err));
	T_CHECK(st == 0, "%s: role failed (%d)", env, st);
	T_CHECK(!strncmp(err, "safefork: ", 10) && strstr(err, want) && strchr(err, '\n') == err + strlen(err) - 1,
		"%s: expected one line with \"%s\", got \"%s\"", env, want, err);
}

int main(int argc, char **argv)
{
	char err[4096];

	if (argc > 1)
		return role();
	const char *modes[] = { "copy", "auto", "off", NULL };
	for (int i = 0; i < 4; i++) {
		int st = t_run(argv[0], "role", 1, modes[i], NULL, err, sizeof(err));
		T_CHECK(st == 0, "mode %s: role failed (%d)", modes[i] ? modes[i] : "unset", st);
		T_CHECK(err[0] == '\0', "mode %s: stderr not empty: \"%s\"", modes[i] ? modes[i] : "unset", err);
	}
	expect_line(argv[0], "SAFEFORK_MODE=bogus", "SAFEFORK_MODE=bogus is not a mode (auto, copy, dontfork, wipe, log, off)");
	expect_line(argv[0], "SAFEFORK_DEBUG=yes", "SAFEFORK_DEBUG=yes");
	expect_line(argv[0], "SAFEFORK_MAX_RANGES=12x", "SAFEFORK_MAX_RANGES=12x");
	/* SAFEFORK_LOG=path: the line goes to the file ("%p" = the pid), nothing to stderr */
	char env[256], prefix[64];
	snprintf(prefix, sizeof(prefix), "safefork-quiet-%d-", (int)getpid());
	snprintf(env, sizeof(env), "SAFEFORK_MODE=bogus SAFEFORK_LOG=/tmp/%s%%p.log", prefix);
	int st = t_run(argv[0], "role", 1, NULL, env, err, sizeof(err));
	T_CHECK(st == 0 && err[0] == '\0', "with SAFEFORK_LOG, stderr must stay empty: %s", err);
	DIR *d = opendir("/tmp");
	struct dirent *e;
	int found = 0;
	while (d && (e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		char path[512], text[512] = "";
		snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
		FILE *f = fopen(path, "r");
		if (f && fgets(text, sizeof(text), f))
			found += strstr(text, "safefork: SAFEFORK_MODE=bogus") != NULL;
		if (f)
			fclose(f);
		unlink(path);
	}
	if (d)
		closedir(d);
	T_CHECK(found == 1, "the message should be in exactly one /tmp/%s<pid>.log (found %d)", prefix, found);
	t_pass("silent when all is well; one line per bad value (SAFEFORK_LOG honoured)");
}
