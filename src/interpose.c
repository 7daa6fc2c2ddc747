/* interpose.c - resolve the next definition of each interposed symbol. */
#include "config.h"

#include <dlfcn.h>
#include <stddef.h>

#include "common.h"
#include "interpose.h"
#include "msg.h"

#define SF_INTERCEPTOR(lib, ret, name, params) ret(*sf_real_##name) params;
#include "interceptors.def"
#undef SF_INTERCEPTOR

void *sf_next_symbol(const char *name, const char *version)
{
	void *p = version ? dlvsym(RTLD_NEXT, name, version) : NULL;

	if (!p)
		p = dlsym(RTLD_NEXT, name);
	return p;
}

void sf_interpose_init(void)
{
	static int missing_said;

	/* Each line of interceptors.def becomes one lookup of name@its version. */
#define SF_INTERCEPTOR(lib, ret, name, params)                                                    \
	if (!sf_real_##name) {                                                                    \
		void *p = sf_next_symbol(#name, SF_VER_##name);                                   \
		if (!p)                                                                           \
			sf_msg_once(&missing_said, "cannot find the next definition of %s", #name); \
		__atomic_store_n((void **)&sf_real_##name, p, __ATOMIC_RELEASE);                  \
	}
#include "interceptors.def"
#undef SF_INTERCEPTOR
}
