/* msg.h - one-line messages that are safe in the fork path and in signal handlers. */
#ifndef SF_MSG_H
#define SF_MSG_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Formats into a stack buffer (no malloc, no stdio, no locks) and emits the
 * line with one write(2), so lines from several processes never interleave
 * (as a JSON object when SAFEFORK_LOG_FORMAT=json).
 * Conversions: %s %d %u %ld %lu %lx %zu %zx %p %%.  Every line is prefixed
 * with "safefork: " and ends with a newline added here.
 */
void sf_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Where lines go, SAFEFORK_LOG: NULL or "stderr": standard error; "syslog":
 * /dev/log; else a file path (%p = pid).  Their format, SAFEFORK_LOG_FORMAT:
 * NULL or "text", or "json" (one object per line).
 */
void sf_msg_init(const char *dest, const char *format);
/* SAFEFORK_LOG_FORMAT=json? */
int sf_log_json(void);
/* Write complete lines (each ending in a newline) to the destination as one unit. */
void sf_log_write(const char *buf, size_t n);
/* s escaped as the inside of a JSON string (no quotes) into dst; returns its length. */
size_t sf_json_escape(char *dst, size_t size, const char *s);
/* "time":<seconds.milliseconds since the epoch> into buf; returns its length. */
size_t sf_json_time(char *buf, size_t size);

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
