/*
 * envparse.h - the pure parsers behind the SAFEFORK_* environment variables:
 * strings in, values out, no getenv, no messages, no global state, so that
 * a fuzzer can call them directly (tests/fuzz/fuzz-env.c).  config.c reads
 * the environment and says what it ignored; msg.c expands SAFEFORK_LOG.
 */
#ifndef SF_ENVPARSE_H
#define SF_ENVPARSE_H

#include <stddef.h>

/* The index of v among names[0..n), or -1 (NULL, empty or unknown). */
int sf_parse_choice(const char *v, const char *const *names, unsigned n);

/*
 * A byte count: decimal digits with an optional K, M or G suffix (either
 * case), nothing before or after.  0 and *out set, or -1 (also when the
 * value does not fit in a size_t).
 */
int sf_parse_size(const char *v, size_t *out);

/* SAFEFORK_DEBUG: 0 for NULL, "" or "0", 1 for "1", -1 for anything else. */
int sf_parse_debug(const char *v);

/*
 * The SAFEFORK_LOG path of process pid: tmpl with every "%p" replaced by
 * the pid and every "%%" by "%", into out[0..size) (size >= 32), always NUL-terminated; a path
 * too long is cut.  Returns its length.
 */
size_t sf_log_path_expand(char *out, size_t size, const char *tmpl, int pid);

#endif
