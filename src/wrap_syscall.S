/*
 * wrap_syscall.S - the front of the syscall() wrapper (x86-64).
 *
 * Programs and old liburing make system calls through libc's syscall().
 * Those that create a process copying the address space (SYS_fork, SYS_clone
 * and SYS_clone3 without CLONE_VM) go to the C side (wrap_syscall.c), which
 * drives the engine; so does SYS_io_uring_register, whose buffer
 * registrations wrap_uring.c records.  Everything else goes straight to libc's syscall() by a
 * tail jump, with no frame of ours: a vfork-style child (SYS_vfork, CLONE_VM
 * without a new stack) runs on the caller's stack until it execs, and a
 * wrapper frame there would be overwritten under the waiting parent.
 */
#include "config.h"
#include "stats.h"
#include <sys/syscall.h>

#define CLONE_VM 0x100
#define ENTRY_SYSCALL 3 /* SAFEFORK_ENTRY_SYSCALL, checked in wrap_syscall.c */
#define MODE_OFF 5      /* SAFEFORK_MODE_OFF, checked in wrap_syscall.c */

	.text
	.globl	syscall
	.type	syscall, @function
	.p2align 4
syscall:
	.cfi_startproc
#ifdef __CET__
	endbr64
#endif
	cmpq	$SYS_clone, %rdi
	je	.Lclone
	cmpq	$SYS_fork, %rdi
	je	.Lslow
	cmpq	$SYS_vfork, %rdi
	je	.Lshared
	cmpq	$SYS_clone3, %rdi
	je	.Lclone3
	cmpq	$SYS_io_uring_register, %rdi	/* may pin memory: wrap_uring.c decodes it */
	je	.Lslow
.Lnext:
	movq	sf_real_syscall(%rip), %rax
	testq	%rax, %rax
	jz	.Lslow			/* not resolved yet: the C side resolves and forwards */
	jmp	*%rax

.Lclone:				/* syscall(SYS_clone, flags, stack, ...) */
	testl	$CLONE_VM, %esi
	jz	.Lslow
.Lshared:				/* the child shares our memory: count it, nothing to protect */
	cmpl	$MODE_OFF, sf_mode(%rip)
	je	.Lnext
	movq	sf_counter(%rip), %rax
	lock incq	8*ENTRY_SYSCALL(%rax)
	lock incq	8*SF_C_SHARED(%rax)
	jmp	.Lnext

.Lclone3:				/* syscall(SYS_clone3, struct clone_args *, size) */
	pushq	%rdi
	.cfi_adjust_cfa_offset 8
	pushq	%rsi
	.cfi_adjust_cfa_offset 8
	pushq	%rdx
	.cfi_adjust_cfa_offset 8
	pushq	%rcx
	.cfi_adjust_cfa_offset 8
	pushq	%r8
	.cfi_adjust_cfa_offset 8
	pushq	%r9
	.cfi_adjust_cfa_offset 8
	subq	$8, %rsp		/* the call below needs a 16-byte aligned stack */
	.cfi_adjust_cfa_offset 8
	movq	%rsi, %rdi
	call	sf_clone3_shares_vm	/* reads args->flags without faulting on a bad pointer */
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r9
	.cfi_adjust_cfa_offset -8
	popq	%r8
	.cfi_adjust_cfa_offset -8
	popq	%rcx
	.cfi_adjust_cfa_offset -8
	popq	%rdx
	.cfi_adjust_cfa_offset -8
	popq	%rsi
	.cfi_adjust_cfa_offset -8
	popq	%rdi
	.cfi_adjust_cfa_offset -8
	testl	%eax, %eax
	jnz	.Lshared
.Lslow:
	jmp	sf_syscall_slow
	.cfi_endproc
	.size	syscall, .-syscall

	.section .note.GNU-stack, "", @progbits
