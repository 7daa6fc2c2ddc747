/* api.c - the public API of safefork.h. */
#include "config.h"

#include <errno.h>
#include <stdint.h>

#include "common.h"
#include "engine.h"
#include "probe.h"
#include "ranges.h"
#include "report.h"

#define POLICY_BITS (SAFEFORK_COPY | SAFEFORK_DONTFORK | SAFEFORK_WIPE | SAFEFORK_LOGONLY)
#define KNOWN_BITS (POLICY_BITS | SAFEFORK_KERNEL_PIN)

static int check_range(const void *addr, size_t len)
{
	return addr && len && (uintptr_t)addr + len > (uintptr_t)addr;
}

SF_EXPORT int safefork_register(const void *addr, size_t len, unsigned int flags)
{
	unsigned int policy = flags & POLICY_BITS;

	if (!check_range(addr, len) || (flags & ~KNOWN_BITS) || (policy & (policy - 1))) {
		errno = EINVAL;
		return -1;
	}
	sf_init();
	int rc = sf_ranges_add((uintptr_t)addr, (uintptr_t)addr + len, flags, SF_SRC_EXPLICIT);
	if (rc < 0) {
		errno = -rc;
		return -1;
	}
	/* The fork path must find its scratch memory ready: a fork cannot be refused for lack of it. */
	if (sf_engine_reserve(sf_ranges_live()) < 0) {
		sf_ranges_del((uintptr_t)addr, (uintptr_t)addr + len);
		errno = ENOMEM;
		return -1;
	}
	/* auto needs to know the kernel: probe at the first registration (the range is already protected) */
	if (sf_mode == SAFEFORK_MODE_AUTO || sf_debug || sf_report_wanted()) /* reports give the kernel's verdict */
		sf_probe_ensure();
	return 0;
}

SF_EXPORT int safefork_unregister(const void *addr, size_t len)
{
	if (!check_range(addr, len)) {
		errno = EINVAL;
		return -1;
	}
	int rc = sf_ranges_del((uintptr_t)addr, (uintptr_t)addr + len);
	if (rc < 0) {
		errno = -rc;
		return -1;
	}
	return 0;
}

SF_EXPORT int safefork_set_mode(enum safefork_mode mode)
{
	if ((unsigned)mode > SAFEFORK_MODE_OFF) {
		errno = EINVAL;
		return -1;
	}
	sf_init();
	__atomic_store_n(&sf_mode, mode, __ATOMIC_RELAXED);
	sf_report_ready();
	return 0;
}

SF_EXPORT enum safefork_mode safefork_get_mode(void)
{
	sf_init();
	return sf_mode;
}

SF_EXPORT const char *safefork_version(void)
{
	return PACKAGE_VERSION;
}
