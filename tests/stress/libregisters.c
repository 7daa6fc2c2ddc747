/*
 * libregisters.c - a library that registers buffers of its own (its .data
 * and .bss) and is dlclose()d without unregistering them (tests/stress/dlclose).
 */
#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

static char data_buf[16 * 4096] = { 1 };
static char bss_buf[64 * 4096];

/* Register both buffers; their addresses and lengths into out[4].  0, or -1. */
int libregisters_setup(void *out[4])
{
	int (*reg)(const void *, size_t, unsigned) =
		(int (*)(const void *, size_t, unsigned))dlsym(RTLD_DEFAULT, "safefork_register");
	memset(data_buf, 0x5a, sizeof(data_buf));
	memset(bss_buf, 0xa5, sizeof(bss_buf));
	out[0] = data_buf;
	out[1] = (void *)sizeof(data_buf);
	out[2] = bss_buf;
	out[3] = (void *)sizeof(bss_buf);
	if (!reg)
		return 0; /* without the library: nothing to register */
	return reg(data_buf, sizeof(data_buf), 0) || reg(bss_buf, sizeof(bss_buf), 0) ? -1 : 0;
}
