/*
 * fork-variants: the other entry points of this stage: _Fork (no atfork
 * handlers), clone and __clone without CLONE_VM, and safefork_fork, each
 * protected, each with its controls.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "harness.h"

static struct t_case the_case;

static pid_t via__Fork(void)
{
	pid_t (*f)(void) = (pid_t(*)(void))dlsym(RTLD_DEFAULT, "_Fork");
	if (!f)
		t_skip("this C library has no _Fork");
	return f();
}

static int clone_child(void *arg)
{
	(void)arg;
	_exit(t_case_child(&the_case));
}

static pid_t via_clone(void)
{
	size_t sz = 256 * 1024;
	char *stack = t_map(sz);
	return clone(clone_child, stack + sz, SIGCHLD, NULL);
}

static pid_t via___clone(void)
{
	int (*f)(int (*)(void *), void *, int, void *, ...) =
		(int (*)(int (*)(void *), void *, int, void *, ...))dlsym(RTLD_DEFAULT, "__clone");
	size_t sz = 256 * 1024;
	char *stack = t_map(sz);
	if (!f)
		t_skip("this C library exports no __clone");
	return f(clone_child, stack + sz, SIGCHLD, NULL);
}

static pid_t via_clone_vfork(void)
{
	/* CLONE_VFORK without CLONE_VM: still a copy of the address space. */
	size_t sz = 256 * 1024;
	char *stack = t_map(sz);
	return clone(clone_child, stack + sz, CLONE_VFORK | SIGCHLD, NULL);
}

static pid_t via_safefork_fork(void)
{
	pid_t (*f)(void) = (pid_t(*)(void))dlsym(RTLD_DEFAULT, "safefork_fork");
	return f ? f() : fork();
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		size_t len = 8 * 4096;
		the_case = (struct t_case){ .reg = t_map(len), .reg_len = len, .register_it = 1 };
		if (!strcmp(argv[1], "_Fork"))
			the_case.do_fork = via__Fork;
		else if (!strcmp(argv[1], "clone"))
			the_case.do_fork = via_clone;
		else if (!strcmp(argv[1], "__clone"))
			the_case.do_fork = via___clone;
		else if (!strcmp(argv[1], "clone-vfork")) {
			the_case.do_fork = via_clone_vfork;
			the_case.no_handshake = 1;
		}
		else
			the_case.do_fork = via_safefork_fork;
		return t_case_run(&the_case);
	}
	int bad = 0;
	bad |= t_protect_and_control(argv[0], "_Fork");
	bad |= t_protect_and_control(argv[0], "clone");
	bad |= t_protect_and_control(argv[0], "__clone");
	bad |= t_protect_and_control(argv[0], "clone-vfork");
	bad |= t_protect_and_control(argv[0], "safefork_fork");
	return bad;
}
