/*
 * wrap_spawn.c - the entry points whose children only exec: system,
 * popen/pclose, posix_spawn and posix_spawnp (both symbol versions: the
 * GLIBC_2.2.5 one runs a #!-less script through /bin/sh, the GLIBC_2.15 one
 * does not), pidfd_spawn(p) where the C library has them.
 *
 * glibc 2.24+ (posix_spawn) and 2.29+ (system, popen) create these children
 * with CLONE_VM|CLONE_VFORK: nothing is copied, so the wrappers only count
 * them.  Older glibc forks copy-on-write for them; there the shim (spawn_shim.c,
 * spawn_shell.c) creates the child instead.  SAFEFORK_SPAWN=shim|libc
 * overrides the choice.  When libc's own path forks (old glibc, or
 * SAFEFORK_SPAWN=libc there) the atfork handlers protect it under the
 * wrapper's entry name; old glibc's system() uses a raw clone no handler
 * sees, which is why the shim is the default there.
 */
#include "config.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>

#include "common.h"
#include "forkctx.h"
#include "interpose.h"
#include "report.h"
#include "spawn_shim.h"
#include "stats.h"

SF_EXPORT int system(const char *line)
{
	sf_init();
	if (sf_mode == SAFEFORK_MODE_OFF)
		return SF_REAL(system)(line);
	if (sf_spawn_use_shim(0)) {
		sf_count_fork(SAFEFORK_ENTRY_SYSTEM, 1);
		sf_report_spawn(SAFEFORK_ENTRY_SYSTEM, __builtin_return_address(0), 1);
		return sf_shim_system(line);
	}
	int shared = sf_libc_spawns_shared(0);
	if (shared) /* harmless here, a fork with an older C library: reported (report.c) */
		sf_report_spawn(SAFEFORK_ENTRY_SYSTEM, __builtin_return_address(0), 0);
	return SF_VIA_GLIBC(SAFEFORK_ENTRY_SYSTEM, shared, __builtin_return_address(0), SF_REAL(system)(line));
}

SF_EXPORT FILE *popen(const char *command, const char *mode)
{
	sf_init();
	if (sf_mode == SAFEFORK_MODE_OFF)
		return SF_REAL(popen)(command, mode);
	if (sf_spawn_use_shim(0)) {
		sf_count_fork(SAFEFORK_ENTRY_POPEN, 1);
		sf_report_spawn(SAFEFORK_ENTRY_POPEN, __builtin_return_address(0), 1);
		return sf_shim_popen(command, mode);
	}
	int shared = sf_libc_spawns_shared(0);
	if (shared)
		sf_report_spawn(SAFEFORK_ENTRY_POPEN, __builtin_return_address(0), 0);
	return SF_VIA_GLIBC(SAFEFORK_ENTRY_POPEN, shared, __builtin_return_address(0), SF_REAL(popen)(command, mode));
}

/* Whatever the mode now: a stream the shim opened is the shim's to close. */
SF_EXPORT int pclose(FILE *fp)
{
	int status;

	if (sf_shim_pclose(fp, &status))
		return status;
	return SF_REAL(pclose)(fp);
}

/* glibc's fclose() of a popen stream waits for the child too; the shim's streams behave alike. */
SF_EXPORT int fclose(FILE *fp)
{
	int status;

	if (sf_shim_pclose(fp, &status))
		return status;
	return SF_REAL(fclose)(fp);
}

typedef int spawn_fn(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
		     char *const[], char *const[]);

static int spawn(spawn_fn *real, int xflags, pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
		 const posix_spawnattr_t *attr, char *const argv[], char *const envp[], void *caller)
{
	sf_init();
	if (sf_mode == SAFEFORK_MODE_OFF)
		return real(pid, file, fa, attr, argv, envp);
	if (sf_spawn_use_shim(1)) {
		int r = sf_spawn(pid, file, fa, attr, argv, envp, xflags);
		if (r >= 0) {
			sf_count_fork(SAFEFORK_ENTRY_POSIX_SPAWN, 1);
			sf_report_spawn(SAFEFORK_ENTRY_POSIX_SPAWN, caller, 1);
			return r;
		}
		/* file actions this build cannot read: libc's own implementation */
	}
	int shared = sf_libc_spawns_shared(1);
	if (shared)
		sf_report_spawn(SAFEFORK_ENTRY_POSIX_SPAWN, caller, 0);
	return SF_VIA_GLIBC(SAFEFORK_ENTRY_POSIX_SPAWN, shared, caller, real(pid, file, fa, attr, argv, envp));
}

SF_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
			  const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	return spawn(SF_REAL(posix_spawn), 0, pid, path, fa, attr, argv, envp, __builtin_return_address(0));
}

SF_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			   const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	return spawn(SF_REAL(posix_spawnp), SF_SPAWN_PATH, pid, file, fa, attr, argv, envp,
		     __builtin_return_address(0));
}

#if SF_HAVEC_posix_spawn
SF_COMPAT_SYMVER(posix_spawn);
SF_EXPORT int sf_compat_posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
				    const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	return spawn(SF_REALC(posix_spawn), SF_SPAWN_TRY_SHELL, pid, path, fa, attr, argv, envp,
		     __builtin_return_address(0));
}
#endif

#if SF_HAVEC_posix_spawnp
SF_COMPAT_SYMVER(posix_spawnp);
SF_EXPORT int sf_compat_posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
				     const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	return spawn(SF_REALC(posix_spawnp), SF_SPAWN_PATH | SF_SPAWN_TRY_SHELL, pid, file, fa, attr, argv, envp,
		     __builtin_return_address(0));
}
#endif

/* glibc 2.39+: always CLONE_VM|CLONE_VFORK (with CLONE_PIDFD): only counted. */
#ifdef HAVE_PIDFD_SPAWN
SF_EXPORT int pidfd_spawn(int *pidfd, const char *path, const posix_spawn_file_actions_t *fa,
			  const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	sf_init();
	if (sf_mode != SAFEFORK_MODE_OFF)
		sf_count_fork(SAFEFORK_ENTRY_POSIX_SPAWN, 1);
	return SF_REAL(pidfd_spawn)(pidfd, path, fa, attr, argv, envp);
}
#endif

#ifdef HAVE_PIDFD_SPAWNP
SF_EXPORT int pidfd_spawnp(int *pidfd, const char *file, const posix_spawn_file_actions_t *fa,
			   const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	sf_init();
	if (sf_mode != SAFEFORK_MODE_OFF)
		sf_count_fork(SAFEFORK_ENTRY_POSIX_SPAWN, 1);
	return SF_REAL(pidfd_spawnp)(pidfd, file, fa, attr, argv, envp);
}
#endif
