/*
 * fuzz-env: libFuzzer target for the SAFEFORK_* environment parsers
 * (src/envparse.c), each checked against a reference written differently.
 *
 * Input: byte 0 picks the parser; the rest is the variable's value (cut at
 * the first NUL, as an environment string would be).  For SAFEFORK_LOG the
 * next 5 bytes also give the pid and the size of the output buffer, which is
 * allocated at exactly that size so AddressSanitizer sees any overrun.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envparse.h"

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz-env: " __VA_ARGS__);         \
			fputc('\n', stderr);                               \
			abort();                                           \
		}                                                          \
	} while (0)

static const char *const modes[] = { "auto", "copy", "dontfork", "wipe", "log", "off" };

/* Reference for sf_parse_size: shape first, then strtoull on the digits and checked arithmetic. */
static int ref_size(const char *v, size_t *out)
{
	size_t nd = strspn(v, "0123456789");
	unsigned shift = 0;
	const char *suf = v + nd;

	if (nd == 0)
		return -1;
	if (*suf && strchr("KkMmGg", *suf)) {
		shift = strchr("Kk", *suf) ? 10 : strchr("Mm", *suf) ? 20 : 30;
		suf++;
	}
	if (*suf)
		return -1;
	char digits[4096];
	if (nd >= sizeof(digits)) {
		/* more than 4095 digits: fits only if they are mostly leading zeros */
		size_t z = strspn(v, "0");
		if (nd - z >= 25)
			return -1;
		memcpy(digits, v + z, nd - z);
		digits[nd - z] = '\0';
	} else {
		memcpy(digits, v, nd);
		digits[nd] = '\0';
	}
	errno = 0;
	unsigned long long n = strtoull(digits, NULL, 10);
	if (errno == ERANGE)
		return -1;
	size_t r;
	if (__builtin_mul_overflow((size_t)n, (size_t)1 << shift, &r) || n > SIZE_MAX)
		return -1;
	*out = r;
	return 0;
}

static void check_size(const char *v)
{
	size_t got = 0x5a5a, want = 0xa5a5;
	int rg = sf_parse_size(v, &got), rw = ref_size(v, &want);

	CHECK(rg == rw, "sf_parse_size(\"%s\") returned %d, reference %d", v, rg, rw);
	CHECK(rg < 0 || got == want, "sf_parse_size(\"%s\") = %zu, reference %zu", v, got, want);
	CHECK(rg == 0 || got == 0x5a5a, "sf_parse_size(\"%s\") failed but wrote its output", v);
}

static void check_choice(const char *v)
{
	unsigned n = sizeof(modes) / sizeof(modes[0]);
	int i = sf_parse_choice(v, modes, n), want = -1;

	for (unsigned k = 0; k < n; k++)
		if (strlen(v) == strlen(modes[k]) && !memcmp(v, modes[k], strlen(v)))
			want = (int)k;
	CHECK(i == want, "sf_parse_choice(\"%s\") = %d, want %d", v, i, want);
}

static void check_debug(const char *v)
{
	int d = sf_parse_debug(v);
	int want = !*v || (v[0] == '0' && !v[1]) ? 0 : (v[0] == '1' && !v[1]) ? 1 : -1;

	CHECK(d == want, "sf_parse_debug(\"%s\") = %d, want %d", v, d, want);
}

static void check_log(const char *v, int pid, size_t size)
{
	/* the whole expansion, with snprintf */
	size_t vl = strlen(v), cap = vl * 12 + 1, n = 0;
	char *ref = malloc(cap), *out = malloc(size);
	CHECK(ref && out, "malloc");
	for (size_t i = 0; i < vl; i++) {
		if (v[i] == '%' && v[i + 1] == 'p') {
			n += (size_t)snprintf(ref + n, cap - n, "%d", pid);
			i++;
		} else if (v[i] == '%' && v[i + 1] == '%') {
			ref[n++] = v[i++];
		} else {
			ref[n++] = v[i];
		}
	}
	ref[n] = '\0';
	size_t k = sf_log_path_expand(out, size, v, pid);
	CHECK(k < size && out[k] == '\0' && strlen(out) == k, "log path: length %zu, buffer %zu", k, size);
	CHECK(k <= n && !memcmp(out, ref, k), "log path \"%s\" (pid %d): \"%s\" is not a prefix of \"%s\"", v, pid,
	      out, ref);
	/* cut only where the next piece would not fit with room for a pid */
	CHECK(k == n || k + 16 >= size, "log path \"%s\": cut at %zu of %zu with room in %zu", v, k, n, size);
	free(ref);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned which = data[0] % 4;
	int pid = 0;
	size_t bufsize = 32;
	data++, size--;
	if (which == 3) {
		if (size < 5)
			return 0;
		memcpy(&pid, data, sizeof(pid));
		bufsize = 32 + data[4] * 4u; /* 32 .. 1052 */
		data += 5, size -= 5;
	}
	char *v = malloc(size + 1);
	CHECK(v, "malloc");
	memcpy(v, data, size);
	v[size] = '\0';
	switch (which) {
	case 0: check_size(v); break;
	case 1: check_choice(v); break;
	case 2: check_debug(v); break;
	case 3: check_log(v, pid, bufsize); break;
	}
	free(v);
	return 0;
}
