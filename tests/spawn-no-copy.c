/*
 * spawn-no-copy: children that only exec never pay for a copy.  system,
 * popen and posix_spawn/posix_spawnp (both symbol versions) with ranges
 * registered in copy mode, through glibc 2.36's own vfork-style
 * implementation (SAFEFORK_SPAWN=libc) and through the shim
 * (SAFEFORK_SPAWN=shim, what old glibc gets): every child is counted as
 * sharing the address space, nothing is staged or protected, the device
 * stays coherent and the registered data intact.  The control in the same
 * process: one fork() is protected and copies the range.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#include "safefork.h"

extern char **environ;

typedef int spawn_fn(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
		     char *const[], char *const[]);
spawn_fn old_posix_spawn, old_posix_spawnp;
__asm__(".symver old_posix_spawn, posix_spawn@GLIBC_2.2.5");
__asm__(".symver old_posix_spawnp, posix_spawnp@GLIBC_2.2.5");

static void spawned(spawn_fn *f, const char *file, const char *what)
{
	pid_t pid;
	char *argv[] = { (char *)"true", NULL };
	int r = f(&pid, file, NULL, NULL, argv, environ);
	T_CHECK(r == 0, "%s: %s", what, strerror(r));
	T_CHECK(t_wait(pid) == 0, "%s: child failed", what);
}

static int role(void)
{
	size_t len = 16 * 4096;
	char *buf = t_map(len), *seen = malloc(len);
	struct t_device dev;
	struct safefork_stats a, b;

	T_CHECK(seen, "malloc");
	t_fill(buf, len, 1);
	T_CHECK(t_register(buf, len, 0) == 0, "register");
	t_dev_attach(&dev, buf, len);
	t_stats(&a);

	T_CHECK(system("true") == 0, "system");
	FILE *p = popen("true", "r");
	T_CHECK(p && pclose(p) == 0, "popen/pclose");
	spawned(posix_spawn, "/bin/true", "posix_spawn");
	spawned(posix_spawnp, "true", "posix_spawnp");
	spawned(old_posix_spawn, "/bin/true", "posix_spawn@GLIBC_2.2.5");
	spawned(old_posix_spawnp, "true", "posix_spawnp@GLIBC_2.2.5");

	t_stats(&b);
	t_fill(buf, len, 2);
	t_dev_read(&dev, seen);
	T_CHECK(t_gen_of(seen, len, NULL) == 2, "the device lost the parent's pages");
	T_CHECK(b.forks[SAFEFORK_ENTRY_SYSTEM] - a.forks[SAFEFORK_ENTRY_SYSTEM] == 1 &&
			b.forks[SAFEFORK_ENTRY_POPEN] - a.forks[SAFEFORK_ENTRY_POPEN] == 1 &&
			b.forks[SAFEFORK_ENTRY_POSIX_SPAWN] - a.forks[SAFEFORK_ENTRY_POSIX_SPAWN] == 4,
		"children not counted per entry point (system %llu, popen %llu, posix_spawn %llu)",
		b.forks[SAFEFORK_ENTRY_SYSTEM] - a.forks[SAFEFORK_ENTRY_SYSTEM],
		b.forks[SAFEFORK_ENTRY_POPEN] - a.forks[SAFEFORK_ENTRY_POPEN],
		b.forks[SAFEFORK_ENTRY_POSIX_SPAWN] - a.forks[SAFEFORK_ENTRY_POSIX_SPAWN]);
	T_CHECK(b.forks_shared - a.forks_shared == 6, "%llu of 6 children counted as sharing the address space",
		b.forks_shared - a.forks_shared);
	T_CHECK(b.bytes_copied == a.bytes_copied && b.forks_protected == a.forks_protected,
		"an exec-only child cost a copy (%llu bytes)", b.bytes_copied - a.bytes_copied);

	/* The control: a fork() of the same process in the same mode copies the range. */
	pid_t pid = fork();
	if (pid == 0)
		_exit(t_gen_of(buf, len, NULL) == 2 ? 0 : 1);
	T_CHECK(t_wait(pid) == 0, "fork child");
	t_stats(&a);
	T_CHECK(a.forks_protected == b.forks_protected + 1 && a.bytes_copied >= b.bytes_copied + len,
		"control: fork() was not protected by a copy");
	t_dev_close(&dev);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return role();
	const char *how[] = { "SAFEFORK_SPAWN=libc", "SAFEFORK_SPAWN=shim", NULL };
	for (int i = 0; i < 3; i++) {
		int st = t_run(argv[0], "role", 1, "copy", how[i], NULL, 0);
		T_CHECK(st == 0, "[%s]: status %d", how[i] ? how[i] : "SAFEFORK_SPAWN unset", st);
		t_note("[%s]: no copy for exec-only children, fork() copied", how[i] ? how[i] : "SAFEFORK_SPAWN unset");
	}
	t_pass("system, popen and posix_spawn(p) (both versions) never copy, through libc and through the shim");
}
