/*
 * fork-syscall: forks made with syscall() directly, bypassing every libc
 * fork function: SYS_fork, SYS_clone and SYS_clone3 without CLONE_VM (each
 * protected, with its controls), and the ones that share the address space
 * (SYS_vfork, CLONE_VM|CLONE_VFORK through SYS_clone and SYS_clone3): no
 * copy and no report, while the library still counts them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "harness.h"
#include "safefork.h"

static pid_t via_sys_fork(void)
{
	return (pid_t)syscall(SYS_fork);
}

static pid_t via_sys_clone(void)
{
	/* x86-64 argument order: flags, stack, parent_tid, child_tid, tls */
	return (pid_t)syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
}

static pid_t via_sys_clone3(void)
{
	struct clone_args args;
	memset(&args, 0, sizeof(args));
	args.exit_signal = SIGCHLD;
	return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

/*
 * The vfork-style children run on our stack until they exit, so they exit
 * at once by a system call made in place: a call instruction would write a
 * return address over the frame the waiting parent resumes in.
 */
#define EXIT_IN_PLACE(code) __asm__ volatile("syscall" ::"a"(SYS_exit), "D"(code) : "memory")

static __attribute__((noinline)) long shared_vfork(void)
{
	long r = syscall(SYS_vfork);
	if (r == 0)
		EXIT_IN_PLACE(7);
	return r;
}

static __attribute__((noinline)) long shared_clone(void)
{
	long r = syscall(SYS_clone, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, NULL, NULL, 0);
	if (r == 0)
		EXIT_IN_PLACE(7);
	return r;
}

static struct clone_args vm_args = { .flags = CLONE_VM | CLONE_VFORK, .exit_signal = SIGCHLD };

static __attribute__((noinline)) long shared_clone3(void)
{
	long r = syscall(SYS_clone3, &vm_args, sizeof(vm_args));
	if (r == 0)
		EXIT_IN_PLACE(7);
	return r;
}

/* Registered range, a device on it, three vfork-style children: nothing copied, nothing said, all counted. */
static int role_shared(void)
{
	size_t len = 8 * 4096;
	char *buf = t_map(len);
	struct safefork_stats a, b;
	long (*ways[])(void) = { shared_vfork, shared_clone, shared_clone3 };
	const char *names[] = { "SYS_vfork", "SYS_clone(CLONE_VM|CLONE_VFORK)", "SYS_clone3(CLONE_VM|CLONE_VFORK)" };

	t_fill(buf, len, 1);
	T_CHECK(t_register(buf, len, 0) == 0, "register: %s", strerror(errno));
	t_stats(&a);
	for (int i = 0; i < 3; i++) {
		long pid = ways[i]();
		if (pid < 0 && errno == ENOSYS)
			t_skip("%s: not supported by this kernel", names[i]);
		T_CHECK(pid > 0, "%s: %s", names[i], strerror(errno));
		int st = t_wait((pid_t)pid);
		T_CHECK(st == 7, "%s: the child did not run (status %d)", names[i], st);
	}
	t_stats(&b);
	T_CHECK(t_gen_of(buf, len, NULL) == 1, "the registered range changed");
	if (t_lib_active()) {
		T_CHECK(b.forks[SAFEFORK_ENTRY_SYSCALL] - a.forks[SAFEFORK_ENTRY_SYSCALL] == 3 &&
				b.forks_shared - a.forks_shared == 3,
			"the library did not count 3 shared children (forks %llu, shared %llu)",
			b.forks[SAFEFORK_ENTRY_SYSCALL] - a.forks[SAFEFORK_ENTRY_SYSCALL], b.forks_shared - a.forks_shared);
		T_CHECK(b.bytes_copied == a.bytes_copied && b.forks_protected == a.forks_protected,
			"the library copied for a child that shares the address space");
		/* The control: a real fork through the same wrapper is protected and copied. */
		pid_t pid = via_sys_fork();
		if (pid == 0)
			_exit(0);
		T_CHECK(t_wait(pid) == 0, "SYS_fork child");
		t_stats(&a);
		T_CHECK(a.forks_protected == b.forks_protected + 1 && a.bytes_copied >= b.bytes_copied + len,
			"control: SYS_fork was not protected (copy mode expected)");
	}
	return 0;
}

/* The same in log mode: a shared child is not reported, a SYS_fork is (the control). */
static int role_shared_log(void)
{
	size_t len = 8 * 4096;
	char *buf = t_map(len);

	t_fill(buf, len, 1);
	T_CHECK(t_register(buf, len, 0) == 0, "register");
	T_CHECK(t_wait((pid_t)shared_vfork()) == 7, "vfork child");
	T_CHECK(t_wait((pid_t)shared_clone()) == 7, "clone child");
	fputs("--\n", stderr); /* everything after this line comes from the control */
	pid_t pid = via_sys_fork();
	if (pid == 0)
		_exit(0);
	T_CHECK(t_wait(pid) == 0, "SYS_fork child");
	return 0;
}

int main(int argc, char **argv)
{
	static struct t_case c;

	if (argc > 1) {
		size_t len = 8 * 4096;
		if (!strcmp(argv[1], "shared"))
			return role_shared();
		if (!strcmp(argv[1], "shared-log"))
			return role_shared_log();
		c = (struct t_case){ .reg = t_map(len), .reg_len = len, .register_it = 1 };
		if (!strcmp(argv[1], "SYS_fork"))
			c.do_fork = via_sys_fork;
		else if (!strcmp(argv[1], "SYS_clone"))
			c.do_fork = via_sys_clone;
		else
			c.do_fork = via_sys_clone3;
		int v = t_case_run(&c);
		struct safefork_stats st;
		if (t_lib_active() && t_stats(&st) == 0)
			T_CHECK(st.forks[SAFEFORK_ENTRY_SYSCALL] == 1, "not counted as a syscall() fork");
		return v;
	}
	int bad = 0;
	bad |= t_protect_and_control(argv[0], "SYS_fork");
	bad |= t_protect_and_control(argv[0], "SYS_clone");
	bad |= t_protect_and_control(argv[0], "SYS_clone3");

	const char *cfg[] = { "copy", NULL };
	for (int i = 0; i < 2; i++) {
		int st = t_run(argv[0], "shared", 1, cfg[i], NULL, NULL, 0);
		if (st == T_SKIP)
			return T_SKIP;
		T_CHECK(st == 0, "shared children [%s]: status %d", cfg[i] ? cfg[i] : "mode unset", st);
	}
	T_CHECK(t_run(argv[0], "shared", 0, NULL, NULL, NULL, 0) == 0, "shared children without the library");
	char err[4096];
	int st = t_run(argv[0], "shared-log", 1, "log", NULL, err, sizeof(err));
	T_CHECK(st == 0, "shared-log role: status %d", st);
	char *sep = strstr(err, "--\n");
	T_CHECK(sep, "no separator in stderr: [%s]", err);
	T_CHECK(sep == err, "a child sharing the address space was reported: [%.*s]", (int)(sep - err), err);
	T_CHECK(strstr(sep, "safefork: unsafe fork") && strstr(sep, "via syscall"),
		"control: the SYS_fork in log mode was not reported: [%s]", sep);
	if (bad)
		return T_FAIL;
	t_pass("SYS_fork, SYS_clone and SYS_clone3 protected; vfork-style syscalls neither copied nor reported");
}
