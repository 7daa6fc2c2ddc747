/*
 * spawn_shim.h - exec-only children without a copy of the address space.
 *
 * glibc before 2.29 creates the children of system() and popen() as
 * copy-on-write forks (system with a raw clone no handler sees), and before
 * 2.24 those of posix_spawn with file actions or attributes.  Each of those
 * forks exposes every pinned page for a child that only wants to exec.  The
 * shim creates such children with clone(CLONE_VM|CLONE_VFORK) on a stack of
 * its own, as glibc 2.29+ does: nothing is copied, nothing to protect.
 */
#ifndef SF_SPAWN_SHIM_H
#define SF_SPAWN_SHIM_H

#include <spawn.h>
#include <stdio.h>
#include <sys/types.h>

/* Which implementation the spawning wrappers use (SAFEFORK_SPAWN). */
enum sf_spawn_pref { SF_SPAWN_AUTO = 0, SF_SPAWN_SHIM, SF_SPAWN_LIBC };
extern enum sf_spawn_pref sf_spawn_pref;

/* Does libc already create this entry point's children vfork-style? (glibc version) */
int sf_libc_spawns_shared(int is_posix_spawn);
/* Use the shim for system/popen (is_posix_spawn 0) or posix_spawn (1)? */
int sf_spawn_use_shim(int is_posix_spawn);

#define SF_SPAWN_PATH 1      /* posix_spawnp: search PATH */
#define SF_SPAWN_TRY_SHELL 2 /* posix_spawn@GLIBC_2.2.5: run a #!-less script with /bin/sh */

/*
 * posix_spawn semantics (file actions and attributes as glibc defines them).
 * Returns 0 or an error number; -1 means "this request needs libc's own
 * implementation" (file actions in a layout this build does not know).
 */
int sf_spawn(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
	     char *const argv[], char *const envp[], int xflags);

int sf_shim_system(const char *line);
FILE *sf_shim_popen(const char *command, const char *mode);
/* 1 and *status when fp came from sf_shim_popen, else 0 (libc's pclose owns it). */
int sf_shim_pclose(FILE *fp, int *status);

/* In a fork child: locks of threads that do not exist here are free. */
void sf_spawn_child_reset(void);

#endif
