/*
 * callstack.c - capture and name the call chain of a fork.
 *
 * libunwind is loaded with dlopen(RTLD_LOCAL), never linked: its shared
 * library exports _Unwind_RaiseException and the other _Unwind_* functions
 * and a weak backtrace(), which, linked into a preloaded library, would take
 * over C++ exception unwinding and glibc's backtrace() in every program.
 * Loaded locally, only we see its symbols.  It is loaded outside the fork
 * path (initialisation, safefork_set_mode) and only when reports are on
 * (sf_report_ready): a quiet process never maps it, nor do its children.
 *
 * Capture: unw_backtrace(), libunwind's fast path for local unwinding.  It
 * does not call malloc: its per-thread frame cache is mmap()ed, its locks
 * are taken with every signal blocked, and its one-time set-up (pthread_once,
 * a thread key, a memory pool; the only lock that is not signal-safe) is done
 * here at load time by a first call.  (libunwind 1.6, checked in its source:
 * src/mi/backtrace.c, src/x86_64/Gtrace.c.)
 *
 * Naming: after the fork, in the parent, outside the engine lock.  dladdr()
 * gives the object; libunwind's get_proc_name reads the object's ELF symbol
 * table, so static functions are named too (it may open files and, in
 * libunwind 1.6, malloc a path: it never runs inside a fork).  dladdr's
 * dynamic symbol is the fallback.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#include "callstack.h"
#include "common.h"
#include "lock.h"
#include "msg.h"

#ifdef HAVE_LIBUNWIND
#define UNW_LOCAL_ONLY
#include <libunwind.h>

/* The exported names behind libunwind's macros (_ULx86_64_local_addr_space, ...). */
#define SF_STR2(x) #x
#define SF_STR(x) SF_STR2(x)

static int (*p_backtrace)(void **, int);
static unw_accessors_t *(*p_get_accessors)(unw_addr_space_t);
static unw_addr_space_t *p_local_as;
static const char *method = "the immediate caller only: SAFEFORK_REPORT=1 names the whole chain";
#else
static const char *method = "the immediate caller only (built without libunwind)";
#endif

static int loaded;     /* whole chains available */
static int load_state; /* sf_once */

static void load(void)
{
#ifdef HAVE_LIBUNWIND
	void *h = dlopen(SF_LIBUNWIND_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		method = "the immediate caller only (" SF_LIBUNWIND_SONAME " cannot be loaded)";
		return;
	}
	p_backtrace = (int (*)(void **, int))dlsym(h, "unw_backtrace");
	p_get_accessors = (unw_accessors_t * (*)(unw_addr_space_t)) dlsym(h, SF_STR(unw_get_accessors));
	p_local_as = (unw_addr_space_t *)dlsym(h, SF_STR(unw_local_addr_space));
	if (!p_backtrace) {
		method = "the immediate caller only (" SF_LIBUNWIND_SONAME " has no unw_backtrace)";
		return;
	}
	/* libunwind's one-time set-up happens here, not in a fork. */
	void *warm[4];
	p_backtrace(warm, 4);
	method = "libunwind";
	__atomic_store_n(&loaded, 1, __ATOMIC_RELEASE);
#endif
}

int sf_stack_load(void)
{
	sf_once(&load_state, load);
	return __atomic_load_n(&loaded, __ATOMIC_ACQUIRE);
}

int sf_stack_loaded(void)
{
	return __atomic_load_n(&loaded, __ATOMIC_ACQUIRE);
}

const char *sf_stack_method(void)
{
	return method;
}

int sf_stack_capture(void **frames, int max)
{
#ifdef HAVE_LIBUNWIND
	if (__atomic_load_n(&loaded, __ATOMIC_ACQUIRE)) {
		int n = p_backtrace(frames, max);
		return n > 0 ? n : 0;
	}
#endif
	(void)frames;
	(void)max;
	return 0;
}

void sf_stack_name(void *ip, struct sf_frame_name *o)
{
	/* A return address: the call instruction ends just before it, maybe at the end of the function. */
	uintptr_t look = (uintptr_t)ip - 1;
	Dl_info info;
	int have = dladdr((void *)look, &info) != 0;

	memset(o, 0, sizeof(*o));
	if (have) {
		o->object = info.dli_fname;
		o->base = info.dli_fbase;
	}
#ifdef HAVE_LIBUNWIND
	if (__atomic_load_n(&loaded, __ATOMIC_ACQUIRE) && p_get_accessors && p_local_as) {
		unw_addr_space_t as = *p_local_as;
		unw_accessors_t *a = p_get_accessors(as);
		unw_word_t off = 0;
		if (a && a->get_proc_name && a->get_proc_name(as, look, o->symbol, sizeof(o->symbol), &off, NULL) == 0 &&
		    o->symbol[0]) {
			o->offset = (unsigned long)off + 1;
			return;
		}
		o->symbol[0] = '\0';
	}
#endif
	if (have && info.dli_sname && info.dli_saddr) {
		sf_format(o->symbol, sizeof(o->symbol), "%s", info.dli_sname);
		o->offset = (unsigned long)((uintptr_t)ip - (uintptr_t)info.dli_saddr);
		return;
	}
	o->offset = (unsigned long)((uintptr_t)ip - (uintptr_t)o->base);
}

int sf_stack_ours(void *ip)
{
	static void *base;
	Dl_info info;

	if (!base && dladdr((void *)sf_stack_ours, &info))
		base = info.dli_fbase;
	return base && dladdr(ip, &info) && info.dli_fbase == base;
}
