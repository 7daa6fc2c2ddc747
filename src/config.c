/* config.c - the environment, read once: SAFEFORK_MODE, SAFEFORK_DEBUG, limits. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "engine.h"
#include "envparse.h"
#include "interpose.h"
#include "msg.h"
#include "ranges.h"
#include "report.h"
#include "spawn_shim.h"
#include "staging.h"
#include "stats.h"

enum safefork_mode sf_mode = SAFEFORK_MODE_AUTO;
int sf_debug;
size_t sf_page_size = 4096;

void sf_atfork_ensure(void);

static const char *const mode_names[] = {
	[SAFEFORK_MODE_AUTO] = "auto", [SAFEFORK_MODE_COPY] = "copy", [SAFEFORK_MODE_DONTFORK] = "dontfork",
	[SAFEFORK_MODE_WIPE] = "wipe", [SAFEFORK_MODE_LOG] = "log",   [SAFEFORK_MODE_OFF] = "off",
};

const char *sf_mode_name(enum safefork_mode m)
{
	return (unsigned)m < sizeof(mode_names) / sizeof(mode_names[0]) ? mode_names[m] : "?";
}

/*
 * An environment variable naming one of n choices: its index, or -1 when
 * unset, empty or unknown (then one line says so; the caller keeps its default).
 */
static int parse_choice(const char *var, const char *const *names, unsigned n, const char *expected)
{
	const char *v = getenv(var);
	int i = sf_parse_choice(v, names, n);

	if (i < 0 && v && *v)
		sf_msg("%s=%s is not %s; using %s", var, v, expected, names[0]);
	return i;
}

static void parse_mode(void)
{
	int i = parse_choice("SAFEFORK_MODE", mode_names, sizeof(mode_names) / sizeof(mode_names[0]),
			     "a mode (auto, copy, dontfork, wipe, log, off)");
	if (i >= 0)
		sf_mode = (enum safefork_mode)i;
}

static void parse_size_var(const char *name, void (*set)(size_t))
{
	const char *v = getenv(name);
	size_t n;

	if (!v || !*v)
		return;
	if (sf_parse_size(v, &n) < 0) {
		sf_msg("%s=%s is not a number (digits with an optional K, M or G); ignored", name, v);
		return;
	}
	set(n);
}

static void parse_spawn(void)
{
	static const char *const names[] = { [SF_SPAWN_AUTO] = "auto", [SF_SPAWN_SHIM] = "shim", [SF_SPAWN_LIBC] = "libc" };
	int i = parse_choice("SAFEFORK_SPAWN", names, sizeof(names) / sizeof(names[0]), "auto, shim or libc");
	if (i >= 0)
		sf_spawn_pref = (enum sf_spawn_pref)i;
}

static void parse_debug(void)
{
	const char *v = getenv("SAFEFORK_DEBUG");
	int d = sf_parse_debug(v);

	if (d < 0)
		sf_msg("SAFEFORK_DEBUG=%s is not 0 or 1; ignored", v);
	else if (d)
		sf_debug = 1;
}

void sf_init(void)
{
	static int done;
	int saved = errno;

	if (__atomic_load_n(&done, __ATOMIC_ACQUIRE) || __atomic_exchange_n(&done, 1, __ATOMIC_ACQ_REL))
		return;
	long ps = sysconf(_SC_PAGESIZE);
	if (ps > 0)
		sf_page_size = (size_t)ps;
	sf_msg_init(getenv("SAFEFORK_LOG"), getenv("SAFEFORK_LOG_FORMAT"));
	parse_mode();
	parse_debug();
	parse_spawn();
	parse_size_var("SAFEFORK_MAX_RANGES", sf_ranges_set_cap);
	parse_size_var("SAFEFORK_POOL_MAX", sf_staging_set_max);
	sf_stats_init();
	sf_interpose_init();
	sf_engine_init();
	sf_atfork_ensure();
	sf_report_init(); /* last: it may load the unwinder */
	errno = saved;
}

__attribute__((constructor)) static void sf_constructor(void)
{
	sf_init();
}
