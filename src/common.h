/* common.h - library-wide state and helpers. */
#ifndef SF_COMMON_H
#define SF_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "safefork.h"

#define SF_HIDDEN __attribute__((visibility("hidden")))
#define SF_EXPORT __attribute__((visibility("default")))
#define SF_TLS __thread __attribute__((tls_model("initial-exec")))

/* The process-wide mode (SAFEFORK_MODE / safefork_set_mode). */
extern enum safefork_mode sf_mode;
/* SAFEFORK_DEBUG: say what is done. */
extern int sf_debug;

/* Parse the environment once (constructor, or first use before it). */
void sf_init(void);
const char *sf_mode_name(enum safefork_mode m);

extern size_t sf_page_size;

static inline uintptr_t sf_align_down(uintptr_t v, uintptr_t a)
{
	return v & ~(a - 1);
}

static inline uintptr_t sf_align_up(uintptr_t v, uintptr_t a)
{
	return (v + a - 1) & ~(a - 1);
}

#endif
