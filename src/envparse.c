/* envparse.c - the pure parsers behind the SAFEFORK_* variables (envparse.h). */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "envparse.h"
#include "msg.h"

int sf_parse_choice(const char *v, const char *const *names, unsigned n)
{
	if (!v || !*v)
		return -1;
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(v, names[i]))
			return (int)i;
	return -1;
}

int sf_parse_size(const char *v, size_t *out)
{
	unsigned long long n = 0;
	unsigned shift = 0;

	/* By hand rather than strtoull, which takes leading blanks, a sign ("-1" is a
	 * huge number) and base prefixes the variables never mean. */
	if (!v || *v < '0' || *v > '9')
		return -1;
	for (; *v >= '0' && *v <= '9'; v++) {
		unsigned d = (unsigned)(*v - '0');
		if (n > (ULLONG_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	switch (*v) {
	case 'K': case 'k': shift = 10; v++; break;
	case 'M': case 'm': shift = 20; v++; break;
	case 'G': case 'g': shift = 30; v++; break;
	}
	if (*v || n > (ULLONG_MAX >> shift) || (n << shift) > (unsigned long long)SIZE_MAX)
		return -1;
	*out = (size_t)(n << shift);
	return 0;
}

int sf_parse_debug(const char *v)
{
	if (!v || !*v || !strcmp(v, "0"))
		return 0;
	return strcmp(v, "1") ? -1 : 1;
}

size_t sf_log_path_expand(char *out, size_t size, const char *tmpl, int pid)
{
	size_t k = 0;

	/* Room is kept for one pid (at most 11 characters with a sign) and the NUL. */
	for (const char *p = tmpl; *p && k + 16 < size; p++) {
		if (p[0] == '%' && p[1] == 'p') {
			k += sf_format(out + k, size - k, "%d", pid);
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			out[k++] = *p++;
		} else {
			out[k++] = *p;
		}
	}
	out[k] = '\0';
	return k;
}
