/*
 * verbs-symbols: a binary linked against every wrapped libibverbs symbol
 * version (.symver references, verbs-fake.h) has each reference bound to
 * libsafefork's wrapper of exactly that version when the library is
 * preloaded (ibv_reg_mr@IBVERBS_1.0 and @IBVERBS_1.1 to two different
 * wrappers), and to libibverbs without it.  Unversioned lookups
 * (dlsym(RTLD_DEFAULT, "ibv_reg_mr")) still find libibverbs: the wrappers
 * are exported under non-default versions.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include "pintest.h"
#include "verbs-fake.h"

static const char *object_of(const void *addr)
{
	Dl_info info;
	if (!dladdr(addr, &info) || !info.dli_fname)
		return "?";
	return info.dli_fname;
}

static int role(void)
{
	int preloaded = t_lib_loaded();
	void *ibverbs = dlopen("libibverbs.so.1", RTLD_LAZY | RTLD_NOLOAD);
	T_CHECK(ibverbs, "libibverbs.so.1 is not loaded although the test links it");

	for (size_t i = 0; i < V_NREFS; i++) {
		const struct v_ref *r = &v_refs[i];
		const char *obj = object_of(r->addr);
		void *real = dlvsym(ibverbs, r->name, r->version);
		T_CHECK(real, "libibverbs has no %s@%s", r->name, r->version);
		if (preloaded) {
			T_CHECK(strstr(obj, "libsafefork") && r->addr != real, "%s@%s bound to %s, not to the wrapper",
				r->name, r->version, obj);
			Dl_info info;
			T_CHECK(dladdr(r->addr, &info) && info.dli_sname && !strcmp(info.dli_sname, r->name),
				"%s@%s: the wrapper is exported as %s", r->name, r->version,
				info.dli_sname ? info.dli_sname : "?");
		} else {
			T_CHECK(r->addr == real, "%s@%s bound to %s, not to libibverbs", r->name, r->version, obj);
		}
		/* what the dynamic linker answers for that version is what the binary got */
		T_CHECK(dlvsym(RTLD_DEFAULT, r->name, r->version) == r->addr, "%s@%s: dlvsym disagrees", r->name,
			r->version);
	}
	T_CHECK(v_refs[0].addr != v_refs[1].addr, "ibv_reg_mr@IBVERBS_1.0 and @IBVERBS_1.1 are the same function");
	T_CHECK(v_refs[6].addr != v_refs[7].addr, "ibv_dereg_mr@IBVERBS_1.0 and @IBVERBS_1.1 are the same function");

	/* unversioned lookups see libibverbs's default versions, never the wrappers */
	const char *names[] = { "ibv_reg_mr", "ibv_dereg_mr", "ibv_dontfork_range", "ibv_fork_init" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		void *p = dlsym(RTLD_DEFAULT, names[i]);
		T_CHECK(p && strstr(object_of(p), "libibverbs"), "dlsym(RTLD_DEFAULT, \"%s\") found %s", names[i],
			p ? object_of(p) : "nothing");
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return role();
	p_run_with_controls(argv[0], "symbols", "copy", NULL);
	t_pass("each libibverbs symbol version binds to its own wrapper (only when preloaded); unversioned "
	       "lookups find libibverbs");
}
