/*
 * preload.c - LD_PRELOAD with libsafefork in it (see preload.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload.h"

/* A sanitizer runtime must be the first object loaded: it keeps its place before us. */
static int is_sanitizer_runtime(const char *entry, size_t len)
{
	static const char *const names[] = { "libasan.", "libhwasan.", "libtsan.", "libclang_rt." };
	const char *base = entry;

	for (size_t i = 0; i < len; i++)
		if (entry[i] == '/')
			base = entry + i + 1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strncmp(base, names[i], strlen(names[i])))
			return 1;
	return 0;
}

char *sf_preload_value(const char *lib, const char *old)
{
	size_t cap = strlen(lib) + (old ? strlen(old) : 0) + 2;
	char *out = malloc(cap), *o = out;
	int placed = 0;

	if (!out)
		return NULL;
	*o = 0;
	for (const char *p = old ? old : ""; *p;) {
		size_t len = strcspn(p, " :");
		if (len && !(strlen(lib) == len && !strncmp(p, lib, len))) {
			if (!placed && !is_sanitizer_runtime(p, len)) {
				o += sprintf(o, "%s%s", o == out ? "" : ":", lib);
				placed = 1;
			}
			o += sprintf(o, "%s%.*s", o == out ? "" : ":", (int)len, p);
		}
		p += len;
		p += strspn(p, " :");
	}
	if (!placed)
		sprintf(o, "%s%s", o == out ? "" : ":", lib);
	return out;
}
