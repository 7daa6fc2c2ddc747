/* msg.c - async-signal-safe formatting for the library's one-line messages. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
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
 * Where lines go (SAFEFORK_LOG): standard error (unset or "stderr"), a file
 * ("%p" becomes the pid) opened for each write with O_APPEND and closed
 * again, or "syslog" (a datagram per line to /dev/log on a socket opened and
 * closed for each write).  So no descriptor of ours stays open in the
 * program: a fork by another thread during a write may inherit one for the
 * duration of that write only (O_CLOEXEC: never past an exec).  How lines
 * look (SAFEFORK_LOG_FORMAT): "safefork: ..." text, or one JSON object per
 * line.  Read once at initialisation (sf_msg_init).  A destination that
 * fails is said once on standard error, which is used from then on.
 */
enum { DEST_STDERR = 0, DEST_FILE, DEST_SYSLOG };
static int dest, dest_failed, json;
static char log_path[512];

static const char *escape_into(char *dst, size_t size, const char *s);
/* All of buf to fd, as far as the kernel takes it (one write(2) for a line that fits a pipe). */
static void write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		long w = sf_syscall(SYS_write, fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		buf += w;
		n -= (size_t)w;
	}
}

/* One message line in the current format, straight to standard error. */
static void to_stderr(const char *buf, size_t n)
{
	write_all(STDERR_FILENO, buf, n);
}

static size_t format_line(char *out, size_t size, const char *text);

/* The destination failed: say so once (on stderr), and use stderr from now on. */
static void give_up(const char *what, int err)
{
	char text[700], line[1600];

	if (__atomic_exchange_n(&dest_failed, 1, __ATOMIC_RELAXED))
		return;
	sf_format(text, sizeof(text), "SAFEFORK_LOG=%s: %s (errno %d); writing to standard error instead",
		  dest == DEST_SYSLOG ? "syslog" : log_path, what, err);
	to_stderr(line, format_line(line, sizeof(line), text));
}

void sf_msg_init(const char *d, const char *format)
{
	int bad_format = 0;

	if (format && *format && strcmp(format, "text") != 0) {
		if (!strcmp(format, "json"))
			json = 1;
		else
			bad_format = 1;
	}
	if (d && *d && !strcmp(d, "syslog")) {
		dest = DEST_SYSLOG;
	} else if (d && *d && strcmp(d, "stderr") != 0) {
		size_t k = 0, dn = strlen(d);
		/* A relative path is taken from the directory we start in, not wherever the program goes later. */
		if (d[0] != '/' && getcwd(log_path, sizeof(log_path) - 2)) {
			k = strlen(log_path);
			if (k > 1)
				log_path[k++] = '/';
		}
		if (k + dn >= sizeof(log_path)) {
			log_path[0] = '\0';
			sf_msg("SAFEFORK_LOG=%s is too long (at most %zu bytes); writing to standard error", d,
			       sizeof(log_path) - 1 - k);
		} else {
			memcpy(log_path + k, d, dn + 1);
			dest = DEST_FILE;
		}
	}
	if (bad_format)
		sf_msg("SAFEFORK_LOG_FORMAT=%s is not text or json; using text", format);
}

int sf_log_json(void)
{
	return json;
}

static int write_file(const char *buf, size_t n)
{
	char path[600];

	sf_log_path_expand(path, sizeof(path), log_path, getpid());
	int fd = (int)sf_syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		give_up("cannot open the file", errno);
		return -1;
	}
	write_all(fd, buf, n);
	sf_close(fd);
	return 0;
}

/*
 * One datagram per line: "<12>safefork[pid]: " (user facility, warning) and
 * the line without its "safefork: " prefix.  Never blocks the program for
 * long: a line the log daemon cannot take within 100 ms goes to standard
 * error.
 */
static int write_syslog(const char *buf, size_t n)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
	int type = SOCK_DGRAM, fd;

	for (;;) {
		fd = (int)sf_syscall(SYS_socket, AF_UNIX, type | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			give_up("cannot create a socket", errno);
			return -1;
		}
		if (sf_syscall(SYS_connect, fd, &sa, sizeof(sa)) == 0)
			break;
		int e = errno;
		sf_close(fd);
		if (e == EPROTOTYPE && type == SOCK_DGRAM) { /* a log daemon listening on a stream socket */
			type = SOCK_STREAM;
			continue;
		}
		give_up("cannot reach /dev/log", e);
		return -1;
	}
	char head[48];
	size_t hn = sf_format(head, sizeof(head), "<12>safefork[%d]: ", (int)getpid());
	while (n) {
		const char *nl = memchr(buf, '\n', n);
		size_t len = nl ? (size_t)(nl - buf) : n, skip = nl ? len + 1 : n;
		const char *body = buf;
		size_t blen = len;
		if (!json && blen >= 10 && !memcmp(body, "safefork: ", 10)) {
			body += 10;
			blen -= 10;
		}
		/* a stream socket needs a terminator between messages */
		struct iovec iov[3] = { { head, hn }, { (void *)body, blen }, { (void *)"", type == SOCK_STREAM } };
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
		long r = sf_syscall(SYS_sendmsg, fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0 && errno == EAGAIN) { /* the daemon's queue is full: give it 100 ms, once */
			struct pollfd pfd = { fd, POLLOUT, 0 };
			struct timespec ts = { 0, 100000000 };
			if (sf_syscall(SYS_ppoll, &pfd, 1, &ts, NULL, 8) > 0)
				r = sf_syscall(SYS_sendmsg, fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		}
		if (r < 0)
			to_stderr(buf, skip);
		buf += skip;
		n -= skip;
	}
	sf_close(fd);
	return 0;
}

void sf_log_write(const char *buf, size_t n)
{
	int saved = errno;

	if (__atomic_load_n(&dest_failed, __ATOMIC_RELAXED) || dest == DEST_STDERR ||
	    (dest == DEST_FILE ? write_file(buf, n) : write_syslog(buf, n)) < 0)
		to_stderr(buf, n);
	errno = saved;
}

/* "time":<seconds since the epoch, ms>, for JSON objects. */
size_t sf_json_time(char *buf, size_t size)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned long ms = (unsigned long)ts.tv_nsec / 1000000;
	return sf_format(buf, size, "\"time\":%lu.%s%lu", (unsigned long)ts.tv_sec,
			 ms < 10 ? "00" : ms < 100 ? "0" : "", ms);
}

/*
 * s as the inside of a JSON string: quote, backslash and control characters
 * escaped; other bytes as they are (names are UTF-8 when the system's are).
 */
static const char *escape_into(char *dst, size_t size, const char *s)
{
	size_t k = 0;

	if (!s)
		s = "";
	for (; *s && k + 7 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			dst[k++] = '\\';
			dst[k++] = (char)c;
		} else if (c < 0x20) {
			k += sf_format(dst + k, size - k, "\\u00%s%x", c < 16 ? "0" : "", (unsigned)c);
		} else {
			dst[k++] = (char)c;
		}
	}
	dst[k] = '\0';
	return dst;
}

size_t sf_json_escape(char *dst, size_t size, const char *s)
{
	escape_into(dst, size, s);
	return strlen(dst);
}

/* text (without prefix) as one line in the current format, newline included. */
static size_t format_line(char *out, size_t size, const char *text)
{
	size_t n;

	if (!json) {
		n = sf_format(out, size - 1, "safefork: %s", text);
	} else {
		char esc[1200];
		n = sf_format(out, size - 1, "{\"event\":\"message\",");
		n += sf_json_time(out + n, size - 1 - n);
		n += sf_format(out + n, size - 1 - n, ",\"pid\":%d,\"message\":\"%s\"}", (int)getpid(),
			       escape_into(esc, sizeof(esc), text));
	}
	out[n++] = '\n';
	return n;
}

void sf_msg(const char *fmt, ...)
{
	char text[512], line[1600];
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	size_t n = sf_vformat(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* One line, always: a message never carries a newline of its own. */
	for (size_t i = 0; i < n; i++)
		if (text[i] == '\n')
			text[i] = ' ';
	sf_log_write(line, format_line(line, sizeof(line), text));
	errno = saved;
}
