/* interpose.c - resolve the next definition of each interposed symbol. */
#include "config.h"

#include <dlfcn.h>
#include <gnu/lib-names.h>
#include <stddef.h>

#include "common.h"
#include "interpose.h"
#include "msg.h"

/* NOLINTBEGIN(bugprone-macro-parentheses): ret is a type, params a parameter list */
#define SF_INTERCEPTOR(lib, ret, name, params) ret(*sf_real_##name) params;
#define SF_COMPAT(lib, ret, name, params) ret(*sf_realc_##name) params;
/* NOLINTEND(bugprone-macro-parentheses) */
#include "interceptors.def"
#undef SF_INTERCEPTOR
#undef SF_COMPAT

void *sf_next_symbol(const char *name, const char *version)
{
	void *p = version ? dlvsym(RTLD_NEXT, name, version) : NULL;

	if (!p)
		p = dlsym(RTLD_NEXT, name);
	if (!p) {
		/*
		 * Nothing after us: the C library was preloaded ahead of us
		 * (LD_PRELOAD=libc.so.6:libsafefork.so).  Its own handle still
		 * finds its definitions, never ours; the handle is never closed.
		 */
		void *libc = dlopen(LIBC_SO, RTLD_LAZY | RTLD_NOLOAD);
		if (libc) {
			p = version ? dlvsym(libc, name, version) : NULL;
			if (!p)
				p = dlsym(libc, name);
		}
	}
	return p;
}

static int missing_said;

static void resolve(void **slot, const char *name, const char *version)
{
	if (__atomic_load_n(slot, __ATOMIC_ACQUIRE))
		return;
	void *p = sf_next_symbol(name, version);
	if (!p)
		sf_msg_once(&missing_said, "cannot find the next definition of %s", name);
	__atomic_store_n(slot, p, __ATOMIC_RELEASE);
}

void *sf_next_optional(void **slot, const char *name, const char *version, const char *soname)
{
	void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (p || !version)
		return p;
	/* Exactly this version: an old caller must not silently become a caller of a newer one. */
	p = dlvsym(RTLD_NEXT, name, version);
	if (!p && soname) {
		/*
		 * Loaded RTLD_LOCAL (a plugin's dlopen, as NCCL does): outside
		 * the global scope RTLD_NEXT searches, but its own calls reach
		 * our wrappers.  Find it by name without loading it; the handle
		 * is kept, so it stays loaded while we hold its functions.
		 */
		void *h = dlopen(soname, RTLD_LAZY | RTLD_NOLOAD);
		if (h)
			p = dlvsym(h, name, version);
	}
	if (p)
		__atomic_store_n(slot, p, __ATOMIC_RELEASE);
	return p;
}

void sf_interpose_init(void)
{
	/* Each C library line of interceptors.def becomes one lookup of name@its version. */
#define SF_INTERCEPTOR(lib, ret, name, params) \
	if (SF_EAGER_##lib)                    \
		resolve((void **)&sf_real_##name, #name, SF_VER_##name);
#define SF_COMPAT(lib, ret, name, params)     \
	if (SF_EAGER_##lib && SF_HAVEC_##name) \
		resolve((void **)&sf_realc_##name, #name, SF_VERC_##name);
#include "interceptors.def"
#undef SF_INTERCEPTOR
#undef SF_COMPAT
}
