/* msg.c - async-signal-safe formatting for the library's one-line messages. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "envparse.h"
#include "msg.h"
#include "sysmem.h"

struct out {
	char *p;
	size_t n, size;
};

static void put(struct out *o, char c)
{
	if (o->n + 1 < o->size)
		o->p[o->n++] = c;
}

static void puts_(struct out *o, const char *s)
{
	if (!s)
		s = "(null)";
	while (*s)
		put(o, *s++);
}

static void putnum(struct out *o, unsigned long v, unsigned base, int neg)
{
	char tmp[24];
	int i = 0;

	do {
		tmp[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		put(o, '-');
	while (i)
		put(o, tmp[--i]);
}

size_t sf_vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, 0, size };

	for (; *fmt; fmt++) {
		int is_long = 0, is_size = 0;

		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == 'l') {
			is_long = 1;
			fmt++;
		} else if (*fmt == 'z') {
			is_size = 1;
			fmt++;
		}
		switch (*fmt) {
		case 's':
			puts_(&o, va_arg(ap, const char *));
			break;
		case 'd': {
			long v = is_long ? va_arg(ap, long) : is_size ? (long)va_arg(ap, ssize_t) : va_arg(ap, int);
			putnum(&o, v < 0 ? -(unsigned long)v : (unsigned long)v, 10, v < 0);
			break;
		}
		case 'u':
		case 'x': {
			unsigned long v = is_long ? va_arg(ap, unsigned long)
				: is_size ? va_arg(ap, size_t) : va_arg(ap, unsigned int);
			if (*fmt == 'x')
				puts_(&o, "0x");
			putnum(&o, v, *fmt == 'x' ? 16 : 10, 0);
			break;
		}
		case 'p':
			puts_(&o, "0x");
			putnum(&o, (uintptr_t)va_arg(ap, void *), 16, 0);
			break;
		case '%':
			put(&o, '%');
			break;
		case '\0':
			fmt--;
			break;
		default:
			put(&o, '%');
			put(&o, *fmt);
		}
	}
	if (size)
		buf[o.n] = '\0';
	return o.n;
}

size_t sf_format(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = sf_vformat(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

/*
 * SAFEFORK_LOG: unset or "stderr" writes to standard error; otherwise a file
 * path ("%p" becomes the pid) opened for each message with O_APPEND and
 * closed again, so no descriptor of ours is ever open in the program or its
 * children.  Read once at initialisation (sf_msg_init).
 */
static char log_path[512];

void sf_msg_init(const char *dest)
{
	if (dest && *dest && strcmp(dest, "stderr") != 0)
		sf_format(log_path, sizeof(log_path), "%s", dest);
}

static void emit(const char *line, size_t n)
{
	int fd = STDERR_FILENO, opened = 0;

	if (log_path[0]) {
		char path[600];
		sf_log_path_expand(path, sizeof(path), log_path, getpid());
		fd = (int)sf_syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			fd = STDERR_FILENO; /* the message is not lost */
		else
			opened = 1;
	}
	while (write(fd, line, n) < 0 && errno == EINTR)
		;
	if (opened)
		sf_close(fd);
}

void sf_msg(const char *fmt, ...)
{
	char line[512];
	size_t n;
	va_list ap;
	int saved = errno;

	/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): a prefix; sf_vformat terminates */
	memcpy(line, "safefork: ", 10);
	va_start(ap, fmt);
	n = 10 + sf_vformat(line + 10, sizeof(line) - 11, fmt, ap);
	va_end(ap);
	/* One line, always: a message never carries a newline of its own. */
	for (size_t i = 10; i < n; i++)
		if (line[i] == '\n')
			line[i] = ' ';
	line[n++] = '\n';
	emit(line, n);
	errno = saved;
}
