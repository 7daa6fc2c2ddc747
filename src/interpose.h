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
#include <stdint.h>
#include <sys/types.h>

#include "symvers.h"

struct iovec;
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

/*
 * Optional libraries (libibverbs, liburing): the C library's symbols are
 * resolved at start-up, theirs when a wrapper first runs, since the library
 * may be dlopen()ed later (or never).  SF_NEXT(name) is the next definition
 * of exactly name@SF_VER_name, or NULL while none is loaded.
 */
#define SF_EAGER_libc 1
#define SF_EAGER_libibverbs 0
#define SF_EAGER_liburing 0
void *sf_next_optional(void **slot, const char *name, const char *version, const char *soname);
#define SF_NEXT(name) \
	((__typeof__(sf_real_##name))sf_next_optional((void **)&sf_real_##name, #name, SF_VER_##name, SF_SONAME_##name))
#define SF_NEXTC(name) \
	((__typeof__(sf_realc_##name))sf_next_optional((void **)&sf_realc_##name, #name, SF_VERC_##name, SF_SONAME_##name))
/*
 * Export sf_opt_<name> as name@<its default version>: a non-default
 * ("hidden") version, which versioned references (every program linked
 * against the library) bind to, and unversioned lookups such as
 * dlsym(RTLD_DEFAULT, name) never see, so a program without the library
 * cannot mistake the wrapper for it.  Use only #if SF_HAVE_<name>.
 */
#define SF_OPT_SYMVER(name) __asm__(".symver sf_opt_" #name ", " #name "@" SF_VER_##name)

#endif
