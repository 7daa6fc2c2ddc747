/* interpose.c - resolve the next definition of each interposed symbol. */
#include "config.h"

#include <dlfcn.h>
#include <stddef.h>

#include "common.h"
#include "interpose.h"
#include "msg.h"

#define SF_INTERCEPTOR(lib, ret, name, params) ret(*sf_real_##name) params;
#define SF_COMPAT(lib, ret, name, params) ret(*sf_realc_##name) params;
#include "interceptors.def"
#undef SF_INTERCEPTOR
#undef SF_COMPAT

void *sf_next_symbol(const char *name, const char *version)
{
	void *p = version ? dlvsym(RTLD_NEXT, name, version) : NULL;

	if (!p)
		p = dlsym(RTLD_NEXT, name);
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

void sf_interpose_init(void)
{
	/* Each line of interceptors.def becomes one lookup of name@its version. */
#define SF_INTERCEPTOR(lib, ret, name, params) resolve((void **)&sf_real_##name, #name, SF_VER_##name);
#define SF_COMPAT(lib, ret, name, params) \
	if (SF_HAVEC_##name)              \
		resolve((void **)&sf_realc_##name, #name, SF_VERC_##name);
#include "interceptors.def"
#undef SF_INTERCEPTOR
#undef SF_COMPAT
}
