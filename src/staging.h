/* staging.h - the memory a fork's snapshot of registered ranges passes through. */
#ifndef SF_STAGING_H
#define SF_STAGING_H

#include <stddef.h>

/*
 * In prepare: a staging area of at least need bytes the parent may write,
 * or NULL (the reason is in errno: ENOMEM, RLIMIT_AS).  Reuses the pool when
 * no earlier child can still see it, else maps a fresh one.
 */
char *sf_staging_get(size_t need);
/* In prepare, after the copy: let the next child inherit [base, base+used). */
void sf_staging_fork_begin(void);
/* In the parent after the fork (pid < 0: the fork failed). */
void sf_staging_parent(int fork_failed);
/* The fork counted by this thread's last sf_staging_fork_begin() failed. */
void sf_staging_fork_failed(void);
/* In the child once its memory is back: drop every trace of the staging. */
void sf_staging_child(void);
/* The pool size kept between forks (SAFEFORK_POOL_MAX); larger snapshots use one-shot staging. */
void sf_staging_set_max(size_t bytes);
/* Bytes currently held by the pool between forks. */
size_t sf_staging_held(void);

#endif
