/*
 * libdeep: a third-party library that runs a command and forks a helper,
 * each three calls deep, behind its caller's back (tests/reports).  The
 * functions are exported (never cloned or inlined across the library
 * boundary) and each does something after its call, so no frame is a tail
 * call that would vanish from the chain.
 */
#include <sys/types.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <unistd.h>

volatile int deep_sink;

__attribute__((noinline)) int deep_inner(const char *cmd)
{
	int r = system(cmd);
	deep_sink++;
	return r;
}

__attribute__((noinline)) int deep_middle(const char *cmd)
{
	int r = deep_inner(cmd);
	deep_sink++;
	return r;
}

__attribute__((noinline)) int deep_outer(const char *cmd)
{
	int r = deep_middle(cmd);
	deep_sink++;
	return r;
}

/* A helper process that only exits; returns its exit status, or -1. */
__attribute__((noinline)) int deep_fork_inner(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	int st = -1;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	deep_sink++;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

__attribute__((noinline)) int deep_fork_middle(void)
{
	int r = deep_fork_inner();
	deep_sink++;
	return r;
}

__attribute__((noinline)) int deep_fork_outer(void)
{
	int r = deep_fork_middle();
	deep_sink++;
	return r;
}
