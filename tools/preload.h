/*
 * preload.h - LD_PRELOAD with libsafefork in it, shared by the launcher
 * (tools/safefork.c) and the Slurm plugin (tools/spank_safefork.c), which
 * must compose the variable the same way.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SF_PRELOAD_H
#define SF_PRELOAD_H

/*
 * LD_PRELOAD with lib first (after leading sanitizer runtimes); the old
 * entries keep their order, an entry naming lib itself is dropped.  The
 * dynamic linker separates entries with spaces or colons; we write colons.
 * Returns a malloc'd string, or NULL when out of memory.
 */
char *sf_preload_value(const char *lib, const char *old);

#endif
