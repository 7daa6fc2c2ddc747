/*
 * interpose.h - finding the next definition of an interposed symbol.
 *
 * Kept apart from the wrappers (as compiler-rt's interception layer is): a
 * wrapper calls SF_REAL(name)(...), which is the definition of exactly the
 * version the wrapper itself is exported under, resolved with dlvsym() so
 * that old callers are never silently turned into callers of a newer
 * version; a compat wrapper calls SF_REALC(name)(...).  Resolution happens
 * in the constructor; a wrapper called before it (from another library's
 * constructor) resolves on first use.
 */
#ifndef SF_INTERPOSE_H
#define SF_INTERPOSE_H

#include <spawn.h>
#include <stdio.h>
#include <sys/types.h>

#include "symvers.h"

struct termios;
struct winsize;

#define SF_INTERCEPTOR(lib, ret, name, params) extern ret(*sf_real_##name) params;
#define SF_COMPAT(lib, ret, name, params) extern ret(*sf_realc_##name) params;
#include "interceptors.def"
#undef SF_INTERCEPTOR
#undef SF_COMPAT

/* Resolve every interceptor's next definition; idempotent. */
void sf_interpose_init(void);
/* Look up the next definition of name@version (version NULL: the default one), or NULL. */
void *sf_next_symbol(const char *name, const char *version);

#define SF_REAL(name) (sf_real_##name ? sf_real_##name : (sf_interpose_init(), sf_real_##name))
#define SF_REALC(name) (sf_realc_##name ? sf_realc_##name : (sf_interpose_init(), sf_realc_##name))

/* Export sf_compat_<name> as name@<oldest compat version> (use only #if SF_HAVEC_<name>). */
#define SF_COMPAT_SYMVER(name) __asm__(".symver sf_compat_" #name ", " #name "@" SF_VERC_##name)

#endif
