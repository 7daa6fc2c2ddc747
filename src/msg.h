/* msg.h - one-line messages that are safe in the fork path and in signal handlers. */
#ifndef SF_MSG_H
#define SF_MSG_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Formats into a stack buffer (no malloc, no stdio, no locks) and emits the
 * line with one write(2), so lines from several processes never interleave.
 * Conversions: %s %d %u %ld %lu %lx %zu %zx %p %%.  Every line is prefixed
 * with "safefork: " and ends with a newline added here.
 */
void sf_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Where messages go: SAFEFORK_LOG (NULL or "stderr": standard error; else a path, %p = pid). */
void sf_msg_init(const char *dest);

/* As sf_msg, but only the first time for a given flag (a static int of the caller's). */
#define sf_msg_once(flagp, ...)                                                    \
	do {                                                                       \
		if (!__atomic_exchange_n((flagp), 1, __ATOMIC_RELAXED))            \
			sf_msg(__VA_ARGS__);                                       \
	} while (0)

/* Format without emitting; returns the length written (always NUL-terminated). */
size_t sf_vformat(char *buf, size_t size, const char *fmt, va_list ap);
size_t sf_format(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
