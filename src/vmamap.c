/* vmamap.c - /proc/self/maps, parsed in a fixed buffer so the fork path can use it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vmamap.h"
#include "sysmem.h"

static uintptr_t hex(const char **p)
{
	uintptr_t v = 0;

	for (;; (*p)++) {
		char c = **p;
		if (c >= '0' && c <= '9')
			v = v * 16 + (uintptr_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (uintptr_t)(c - 'a' + 10);
		else
			return v;
	}
}

/* "start-end perms offset dev inode   path" */
static void parse_line(const char *l, const char *end, struct sf_vma *v)
{
	const char *p = l;
	int field = 0;

	v->start = hex(&p);
	p++;
	v->end = hex(&p);
	p++;
	v->prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) | (p[2] == 'x' ? PROT_EXEC : 0);
	v->shared = p[3] == 's';
	/* Skip perms, offset, dev, inode: the path starts after the 5th field. */
	while (p < end && field < 5) {
		while (p < end && *p != ' ')
			p++;
		while (p < end && *p == ' ')
			p++;
		field++;
	}
	v->anon = p >= end || *p == '[';
	v->hugetlb_anon = (size_t)(end - p) >= 14 && !memcmp(p, "/anon_hugepage", 14);
}

int sf_maps_foreach(int (*cb)(const struct sf_vma *vma, void *arg), void *arg)
{
	static char buf[16384]; /* the fork path is serialised by the engine lock */

	return sf_maps_foreach_in(buf, sizeof(buf), cb, arg);
}

int sf_maps_foreach_in(char *buf, size_t size, int (*cb)(const struct sf_vma *vma, void *arg), void *arg)
{
	size_t have = 0;
	int fd = (int)sf_syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	int stop = 0;

	if (fd < 0)
		return -errno;
	while (!stop) {
		ssize_t r = read(fd, buf + have, size - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		char *line = buf, *nl;
		while (!stop && (nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
			struct sf_vma v;
			parse_line(line, nl, &v);
			stop = cb(&v, arg);
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == size) /* a line longer than the buffer: drop it */
			have = 0;
	}
	sf_close(fd);
	return 0;
}
