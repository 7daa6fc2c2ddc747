/*
 * spawn_shim.c - posix_spawn() semantics with clone(CLONE_VM|CLONE_VFORK).
 *
 * The child runs on a stack of its own in the parent's memory until it
 * execs, so it makes only raw system calls (no locks, no allocation, no
 * stdio), resets every handled signal to SIG_DFL before it unblocks signals
 * (a handler must not run in the parent's memory), and reports a failure by
 * writing the error into the request the parent waits on.  The order of the
 * steps is glibc's (sysdeps/unix/sysv/linux/spawni.c): signal dispositions,
 * scheduling, setsid, process group, ids, file actions, signal mask, exec.
 *
 * File actions are read from glibc's own representation (spawn_int.h),
 * checked once against the public API that builds them: a layout this build
 * does not recognise hands the request back to libc.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "common.h"
#include "interpose.h"
#include "lock.h"
#include "msg.h"
#include "spawn_shim.h"
#include "sysmem.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
/* The child's frames never return (it execs), so AddressSanitizer would keep
 * their poison for whatever is mapped there next: start each stack clean. */
#define stack_unpoison(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define stack_unpoison(p, n) ((void)(p), (void)(n))
#endif

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

enum sf_spawn_pref sf_spawn_pref = SF_SPAWN_AUTO;

static int libc_at_least(int maj, int min)
{
	const char *v = gnu_get_libc_version();
	char *dot;
	long a = strtol(v, &dot, 10), b = 0;

	if (*dot == '.')
		b = strtol(dot + 1, NULL, 10);
	return a > maj || (a == maj && b >= min);
}

int sf_libc_spawns_shared(int is_posix_spawn)
{
	/* glibc 2.24: posix_spawn always CLONE_VM|CLONE_VFORK; 2.29: system and popen through it. */
	return is_posix_spawn ? libc_at_least(2, 24) : libc_at_least(2, 29);
}

static int layout_ok, layout_state, once_layout;
static void check_layout(void);

int sf_spawn_use_shim(int is_posix_spawn)
{
	if (sf_spawn_pref == SF_SPAWN_LIBC || (sf_spawn_pref == SF_SPAWN_AUTO && sf_libc_spawns_shared(is_posix_spawn)))
		return 0;
	sf_once(&layout_state, check_layout);
	if (!layout_ok) {
		sf_msg_once(&once_layout, "this C library's posix_spawn file actions are not laid out as expected; "
			    "its own system/popen/posix_spawn are used");
		return 0;
	}
	return 1;
}

/* ---------------------------------------------------------------- glibc's file actions */

/* posix/spawn_int.h: the tags are in the order they were added (2.2 .. 2.35). */
enum { DO_CLOSE, DO_DUP2, DO_OPEN, DO_CHDIR, DO_FCHDIR, DO_CLOSEFROM, DO_TCSETPGRP, DO_NR };
struct glibc_action {
	int tag;
	union {
		struct {
			int fd;
		} close;
		struct {
			int fd, newfd;
		} dup2;
		struct {
			int fd;
			char *path;
			int oflag;
			mode_t mode;
		} open;
		struct {
			char *path;
		} chdir;
		struct {
			int fd;
		} fd_only; /* fchdir, closefrom (from), tcsetpgrp */
	} a;
};

static const struct glibc_action *actions_of(const posix_spawn_file_actions_t *fa, int *n)
{
	*n = fa ? fa->__used : 0;
	return fa ? (const struct glibc_action *)fa->__actions : NULL;
}

/* Does glibc build file actions the way this file reads them? (layout_ok) */
static void check_layout(void)
{
	posix_spawn_file_actions_t fa;
	const struct glibc_action *a;
	int n, ok;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return;
	ok = posix_spawn_file_actions_addclose(&fa, 1001) == 0 && posix_spawn_file_actions_adddup2(&fa, 1002, 1003) == 0 &&
	     posix_spawn_file_actions_addopen(&fa, 1004, "/safefork", O_RDONLY | O_CLOEXEC, 0640) == 0;
#ifdef HAVE_POSIX_SPAWN_FILE_ACTIONS_ADDCHDIR_NP
	ok = ok && posix_spawn_file_actions_addchdir_np(&fa, "/") == 0 &&
	     posix_spawn_file_actions_addfchdir_np(&fa, 1005) == 0;
#endif
#ifdef HAVE_POSIX_SPAWN_FILE_ACTIONS_ADDCLOSEFROM_NP
	ok = ok && posix_spawn_file_actions_addclosefrom_np(&fa, 1006) == 0;
#endif
#ifdef HAVE_POSIX_SPAWN_FILE_ACTIONS_ADDTCSETPGRP_NP
	ok = ok && posix_spawn_file_actions_addtcsetpgrp_np(&fa, 1007) == 0;
#endif
	a = actions_of(&fa, &n);
	ok = ok && n >= 3 && a[0].tag == DO_CLOSE && a[0].a.close.fd == 1001 && a[1].tag == DO_DUP2 &&
	     a[1].a.dup2.fd == 1002 && a[1].a.dup2.newfd == 1003 && a[2].tag == DO_OPEN && a[2].a.open.fd == 1004 &&
	     a[2].a.open.path && !strcmp(a[2].a.open.path, "/safefork") && a[2].a.open.oflag == (O_RDONLY | O_CLOEXEC) &&
	     a[2].a.open.mode == 0640;
	for (int i = 3; ok && i < n; i++) {
		int want = DO_CHDIR + (i - 3);
		ok = a[i].tag == want &&
		     (want == DO_CHDIR ? a[i].a.chdir.path && !strcmp(a[i].a.chdir.path, "/")
				       : a[i].a.fd_only.fd == 1005 + (want - DO_FCHDIR));
	}
	posix_spawn_file_actions_destroy(&fa);
	layout_ok = ok;
}

/* ---------------------------------------------------------------- the child */

struct kernel_sigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask;
};

#define SPAWN_ERROR 127

struct req {
	const char *file;
	const struct glibc_action *actions;
	int nactions;
	short flags; /* POSIX_SPAWN_* */
	pid_t pgrp;
	sigset_t sigdef, sigmask, parent_mask;
	int policy;
	struct sched_param sp;
	char *const *argv;
	char *const *envp;
	int argc;
	int xflags;
	const char *path; /* PATH for SF_SPAWN_PATH */
	int err;          /* written by the child when it fails */
};

static void child_sigdefaults(const struct req *r)
{
	for (int sig = 1; sig < _NSIG; sig++) {
		struct kernel_sigaction ka = { 0 };
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if ((r->flags & POSIX_SPAWN_SETSIGDEF) && sigismember(&r->sigdef, sig)) {
			ka.handler = SIG_DFL;
		} else if (sig >= 32 && sig < SIGRTMIN) {
			ka.handler = SIG_IGN; /* glibc's internal signals (cancellation, setxid) */
		} else {
			struct kernel_sigaction cur = { 0 }; /* (written by the kernel: initialised for the analyzers) */
			if (sf_syscall(SYS_rt_sigaction, sig, NULL, &cur, _NSIG / 8) != 0 || cur.handler == SIG_IGN ||
			    cur.handler == SIG_DFL)
				continue;
			ka.handler = SIG_DFL; /* a handler must not run in the parent's memory */
		}
		sf_syscall(SYS_rt_sigaction, sig, &ka, NULL, _NSIG / 8);
	}
}

static int child_file_actions(const struct req *r)
{
	for (int i = 0; i < r->nactions; i++) {
		const struct glibc_action *a = &r->actions[i];
		switch (a->tag) {
		case DO_CLOSE:
			if (sf_syscall(SYS_close, a->a.close.fd) != 0) {
				struct rlimit rl = { 0 };
				/* only a descriptor out of range is an error (POSIX) */
				if (a->a.close.fd < 0 || (sf_syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) == 0 &&
							  (rlim_t)a->a.close.fd >= rl.rlim_cur))
					return -1;
			}
			break;
		case DO_OPEN: {
			/* POSIX: an fd already open is closed before the new file is opened */
			sf_syscall(SYS_close, a->a.open.fd);
			long fd = sf_syscall(SYS_openat, AT_FDCWD, a->a.open.path, a->a.open.oflag, a->a.open.mode);
			if (fd < 0)
				return -1;
			if (fd != a->a.open.fd) {
				if (sf_syscall(SYS_dup3, fd, a->a.open.fd, 0) != a->a.open.fd || sf_syscall(SYS_close, fd) != 0)
					return -1;
			}
			break;
		}
		case DO_DUP2:
			if (a->a.dup2.fd == a->a.dup2.newfd) {
				/* Austin Group issue 411: dup2 onto itself clears FD_CLOEXEC */
				long fl = sf_syscall(SYS_fcntl, a->a.dup2.fd, F_GETFD);
				if (fl < 0 || sf_syscall(SYS_fcntl, a->a.dup2.fd, F_SETFD, fl & ~FD_CLOEXEC) < 0)
					return -1;
			} else if (sf_syscall(SYS_dup3, a->a.dup2.fd, a->a.dup2.newfd, 0) != a->a.dup2.newfd) {
				return -1;
			}
			break;
		case DO_CHDIR:
			if (sf_syscall(SYS_chdir, a->a.chdir.path) != 0)
				return -1;
			break;
		case DO_FCHDIR:
			if (sf_syscall(SYS_fchdir, a->a.fd_only.fd) != 0)
				return -1;
			break;
		case DO_CLOSEFROM:
			if (sf_syscall(SYS_close_range, a->a.fd_only.fd, ~0u, 0) != 0) {
				struct rlimit rl = { 0 }; /* kernels before 5.9: one close per descriptor */
				if (sf_syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) != 0)
					return -1;
				for (rlim_t fd = (rlim_t)a->a.fd_only.fd; fd < rl.rlim_cur && fd < (1u << 20); fd++)
					sf_syscall(SYS_close, fd);
			}
			break;
		case DO_TCSETPGRP: {
			pid_t pg = (r->flags & POSIX_SPAWN_SETPGROUP) && r->pgrp ? r->pgrp
										: (pid_t)sf_syscall(SYS_getpgid, 0);
			if (sf_syscall(SYS_ioctl, a->a.fd_only.fd, TIOCSPGRP, &pg) != 0)
				return -1;
			break;
		}
		default:
			errno = EINVAL;
			return -1;
		}
	}
	return 0;
}

static void child_execve(const struct req *r, const char *file)
{
	sf_syscall(SYS_execve, file, r->argv, r->envp);
	if (errno == ENOEXEC && (r->xflags & SF_SPAWN_TRY_SHELL)) {
		/* posix_spawn@GLIBC_2.2.5: a script without #! runs under /bin/sh (argv[0] is replaced) */
		char *argv[r->argc + 3];
		int n = 0;
		argv[n++] = (char *)"/bin/sh";
		argv[n++] = (char *)r->file;
		for (int i = 1; i < r->argc; i++)
			argv[n++] = r->argv[i];
		argv[n] = NULL;
		sf_syscall(SYS_execve, "/bin/sh", argv, r->envp);
	}
}

/* execvpe's search (glibc's __execvpex): PATH entries in order, EACCES remembered. */
static void child_exec(const struct req *r)
{
	const char *file = r->file;

	if (!(r->xflags & SF_SPAWN_PATH) || strchr(file, '/')) {
		child_execve(r, file);
		return;
	}
	if (!*file) {
		errno = ENOENT;
		return;
	}
	size_t flen = strnlen(file, NAME_MAX + 1);
	if (flen > NAME_MAX) {
		errno = ENAMETOOLONG;
		return;
	}
	char buf[PATH_MAX + NAME_MAX + 2];
	int eacces = 0;
	for (const char *p = r->path, *end;; p = end + 1) {
		end = strchrnul(p, ':');
		size_t dlen = (size_t)(end - p);
		if (dlen < PATH_MAX) {
			memcpy(buf, p, dlen);
			buf[dlen] = '/';
			memcpy(buf + dlen + (dlen > 0), file, flen + 1); /* an empty entry is the current directory */
			child_execve(r, buf);
			switch (errno) {
			case EACCES:
				eacces = 1;
				break;
			case ENOENT:
			case ESTALE:
			case ENOTDIR:
			case ENODEV:
			case ETIMEDOUT:
				break;
			default:
				return; /* found it, but it cannot run */
			}
		}
		if (!*end)
			break;
	}
	if (eacces)
		errno = EACCES;
}

static int child(void *arg)
{
	struct req *r = arg;

	child_sigdefaults(r);
	if ((r->flags & (POSIX_SPAWN_SETSCHEDPARAM | POSIX_SPAWN_SETSCHEDULER)) == POSIX_SPAWN_SETSCHEDPARAM) {
		if (sf_syscall(SYS_sched_setparam, 0, &r->sp) != 0)
			goto fail;
	} else if (r->flags & POSIX_SPAWN_SETSCHEDULER) {
		if (sf_syscall(SYS_sched_setscheduler, 0, r->policy, &r->sp) != 0)
			goto fail;
	}
#ifdef POSIX_SPAWN_SETSID
	if ((r->flags & POSIX_SPAWN_SETSID) && sf_syscall(SYS_setsid) < 0)
		goto fail;
#endif
	if ((r->flags & POSIX_SPAWN_SETPGROUP) && sf_syscall(SYS_setpgid, 0, r->pgrp) != 0)
		goto fail;
	if ((r->flags & POSIX_SPAWN_RESETIDS) && (sf_syscall(SYS_setresuid, -1, sf_syscall(SYS_getuid), -1) != 0 ||
						  sf_syscall(SYS_setresgid, -1, sf_syscall(SYS_getgid), -1) != 0))
		goto fail;
	if (child_file_actions(r) != 0)
		goto fail;
	sf_syscall(SYS_rt_sigprocmask, SIG_SETMASK, (r->flags & POSIX_SPAWN_SETSIGMASK) ? &r->sigmask : &r->parent_mask,
		   NULL, _NSIG / 8);
	child_exec(r);
fail:
	r->err = errno ? errno : ECHILD;
	sf_syscall(SYS_exit_group, SPAWN_ERROR);
	return SPAWN_ERROR;
}

/* ---------------------------------------------------------------- the parent */

int sf_spawn(pid_t *pidp, const char *file, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
	     char *const argv[], char *const envp[], int xflags)
{
	struct req r;
	int saved = errno, cancel_state, ret = 0;

	sf_once(&layout_state, check_layout);
	if (fa && fa->__used > 0 && !layout_ok)
		return -1;
	for (int i = 0; fa && i < fa->__used; i++)
		if (((const struct glibc_action *)fa->__actions)[i].tag >= DO_NR)
			return -1; /* an action newer than this build: libc knows it */
	memset(&r, 0, sizeof(r));
	r.file = file;
	r.actions = actions_of(fa, &r.nactions);
	if (attr) {
		posix_spawnattr_getflags(attr, &r.flags);
		posix_spawnattr_getpgroup(attr, &r.pgrp);
		posix_spawnattr_getsigdefault(attr, &r.sigdef);
		posix_spawnattr_getsigmask(attr, &r.sigmask);
		posix_spawnattr_getschedpolicy(attr, &r.policy);
		posix_spawnattr_getschedparam(attr, &r.sp);
	}
	r.argv = argv;
	r.envp = envp;
	while (argv[r.argc])
		r.argc++;
	r.xflags = xflags;
	r.path = getenv("PATH"); /* the caller's PATH, not envp's (glibc) */
	if (!r.path)
		r.path = "/bin:/usr/bin";

	/* Room for the PATH buffer and the /bin/sh fallback's argv, on top of the calls' own frames. */
	size_t stack_len = sf_align_up(65536 + PATH_MAX + NAME_MAX + (size_t)(r.argc + 3) * sizeof(char *), sf_page_size);
	void *stack = sf_mmap(NULL, stack_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return errno;
	stack_unpoison(stack, stack_len);

	/* Every signal blocked (glibc's internal ones too) until the child has reset its handlers. */
	sigset_t all;
	memset(&all, 0xff, sizeof(all));
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
	sf_syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, &r.parent_mask, _NSIG / 8);

	pid_t pid = SF_REAL(clone)(child, (char *)stack + stack_len, CLONE_VM | CLONE_VFORK | SIGCHLD, &r);
	if (pid < 0) {
		ret = errno;
	} else if (r.err) {
		/* the child failed before exec and exited: reap it, report its error */
		ret = r.err;
		while (sf_syscall(SYS_wait4, pid, NULL, 0, NULL) < 0 && errno == EINTR)
			;
	} else if (pidp) {
		*pidp = pid;
	}
	stack_unpoison(stack, stack_len); /* nor leave it behind for the next mapping there */
	sf_munmap(stack, stack_len);
	sf_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &r.parent_mask, NULL, _NSIG / 8);
	pthread_setcancelstate(cancel_state, NULL);
	errno = saved;
	return ret;
}
