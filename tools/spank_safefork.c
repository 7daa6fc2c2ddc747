/*
 * spank_safefork.c - Slurm SPANK plugin: libsafefork in the tasks of a job.
 *
 *   srun|sbatch|salloc --safefork[=MODE] ...        (MODE: a SAFEFORK_MODE)
 *   plugstack.conf:  optional spank_safefork.so [default=MODE] [partition=P,...] [library=PATH]
 *                    [log=DEST] [json]
 *
 * With the option, or a site default from plugstack.conf, every task of
 * the job step starts with the library first in LD_PRELOAD and
 * SAFEFORK_MODE set; with neither, the plugin changes nothing.  See
 * safefork-spank(8).
 *
 * The environment is changed in slurm_spank_user_init: it runs once per
 * step on each node, in slurmstepd, as the job's user (privileges dropped)
 * and before any task is forked.  So the library is checked once per node
 * with the user's own rights, a missing one is said once per node rather
 * than once per task, and every task (the batch script of an sbatch job
 * too) inherits the result; slurmstepd's own environment is not touched.
 * The plugin never fails a job: a bad plugstack.conf argument or a missing
 * library is one "safefork:" line and the job runs without the library.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <slurm/spank.h>

#include "preload.h"

#ifndef SF_LIBDIR
#error SF_LIBDIR and SF_SONAME come from the Makefile
#endif

SPANK_PLUGIN(safefork, 1);

/* The library's modes (SAFEFORK_MODE); checked here so srun refuses a bad one before the job starts. */
static const char *const modes[] = { "auto", "copy", "dontfork", "wipe", "log", "off" };
#define MODES_TEXT "auto, copy, dontfork, wipe, log or off"

static char library[4096] = SF_LIBDIR "/" SF_SONAME; /* library=PATH */
static const char *site_default;                      /* default=MODE; NULL: only jobs that ask */
static char partitions[1024];                         /* partition=P1,P2: where the default applies; "": everywhere */
static char log_dest[4096];                           /* log=DEST: SAFEFORK_LOG for every job given the library */
static int log_json;                                  /* json: SAFEFORK_LOG_FORMAT=json with it */

static const char *known_mode(const char *s)
{
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(s, modes[i]))
			return modes[i];
	return NULL;
}

/*
 * --safefork[=MODE]: refused in srun/sbatch/salloc when MODE is not a mode.
 * Never in slurmstepd, where a refusal would fail the job step: a bad value
 * that got there (through the job's environment) is said by user_init.
 */
static int check_option(int val, const char *optarg, int remote)
{
	(void)val;
	if (remote || !optarg || !*optarg || known_mode(optarg))
		return 0;
	slurm_error("safefork: --safefork=%s: not a mode (" MODES_TEXT ")", optarg);
	return -1;
}

static struct spank_option option = {
	"safefork", "[MODE]",
	"Preload libsafefork into every task: fork() keeps memory pinned for device DMA coherent. "
	"MODE: " MODES_TEXT " (default: the site's, else auto); off: not preloaded.",
	2, 0, check_option
};

/* plugstack.conf arguments: a bad one is said and ignored (jobs run as if it were absent). */
static void parse_args(int ac, char **av)
{
	for (int i = 0; i < ac; i++) {
		if (!strncmp(av[i], "default=", 8)) {
			const char *m = known_mode(av[i] + 8);
			if (m || !strcmp(av[i] + 8, "none"))
				site_default = m;
			else
				slurm_error("safefork: plugstack.conf: %s: not a mode (" MODES_TEXT ", or none); ignored",
					    av[i]);
		} else if (!strncmp(av[i], "library=", 8)) {
			const char *p = av[i] + 8;
			size_t len = strlen(p);
			if (p[0] != '/' || strpbrk(p, " :") || len >= sizeof(library))
				slurm_error("safefork: plugstack.conf: %s: an absolute path without spaces or colons "
					    "is needed; ignored",
					    av[i]);
			else
				memcpy(library, p, len + 1);
		} else if (!strncmp(av[i], "partition=", 10) && av[i][10] && strlen(av[i] + 10) < sizeof(partitions)) {
			memcpy(partitions, av[i] + 10, strlen(av[i] + 10) + 1);
		} else if (!strncmp(av[i], "log=", 4) && strlen(av[i] + 4) < sizeof(log_dest) &&
			   (av[i][4] == '/' || !strcmp(av[i] + 4, "stderr") || !strcmp(av[i] + 4, "syslog"))) {
			/* absolute: the tasks run in the job's directory, the site means one place */
			memcpy(log_dest, av[i] + 4, strlen(av[i] + 4) + 1);
		} else if (!strcmp(av[i], "json")) {
			log_json = 1;
		} else {
			slurm_error("safefork: plugstack.conf: bad argument %s (default=MODE, partition=NAME[,NAME...], "
				    "library=PATH, log=stderr|syslog|/PATH, json); ignored",
				    av[i]);
		}
	}
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	parse_args(ac, av);
	/* registered (not a static spank_options table) so that sbatch and salloc have it too */
	if (spank_option_register(sp, &option) != ESPANK_SUCCESS)
		slurm_error("safefork: cannot register --safefork");
	return 0;
}

/* The job's value of name (malloc'd), or NULL when it has none. */
static char *job_getenv(spank_t sp, const char *name)
{
	for (int len = 4096; len <= (1 << 24); len *= 4) {
		char *buf = malloc((size_t)len);
		if (!buf)
			return NULL;
		spank_err_t e = spank_getenv(sp, name, buf, len);
		if (e == ESPANK_SUCCESS)
			return buf;
		free(buf);
		if (e != ESPANK_NOSPACE)
			return NULL;
	}
	return NULL;
}

/* Does the site default apply to this job: no partition= list, or the job's partition is in it? */
static int default_applies(spank_t sp)
{
	if (!site_default)
		return 0;
	if (!partitions[0])
		return 1;
	char *part = job_getenv(sp, "SLURM_JOB_PARTITION");
	int in = 0;
	if (part) {
		size_t n = strlen(part);
		for (const char *p = partitions; *p && !in; p += strcspn(p, ","), p += *p == ',')
			in = strcspn(p, ",") == n && !strncmp(p, part, n);
		free(part);
	}
	return in;
}

int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	char *arg = NULL;
	const char *mode;
	int asked = spank_option_getopt(sp, &option, &arg) == ESPANK_SUCCESS;

	(void)ac;
	(void)av;
	int by_default = default_applies(sp);

	if (asked && arg && *arg)
		mode = known_mode(arg);
	else if (asked)
		mode = by_default ? site_default : "auto";
	else if (by_default)
		mode = site_default;
	else
		return 0; /* neither the option nor a default: no effect at all */
	if (!mode) { /* the option comes from the job's environment, which srun did not check */
		slurm_error("safefork: --safefork=%s: not a mode (" MODES_TEXT "); the job runs without the library",
			    arg);
		return 0;
	}

	if (strcmp(mode, "off") != 0) {
		if (access(library, R_OK) != 0) {
			slurm_error("safefork: %s: %s; the job runs without the library", library, strerror(errno));
			return 0;
		}
		char *old = job_getenv(sp, "LD_PRELOAD");
		char *val = sf_preload_value(library, old);
		free(old);
		if (!val || spank_setenv(sp, "LD_PRELOAD", val, 1) != ESPANK_SUCCESS) {
			slurm_error("safefork: cannot set LD_PRELOAD; the job runs without the library");
			free(val);
			return 0;
		}
		free(val);
		/* The site's log, unless the user chose one. */
		if (log_dest[0])
			spank_setenv(sp, "SAFEFORK_LOG", log_dest, 0);
		if (log_json)
			spank_setenv(sp, "SAFEFORK_LOG_FORMAT", "json", 0);
	}
	/* Asked for: the option wins.  A site default leaves a SAFEFORK_MODE the user exported alone. */
	spank_setenv(sp, "SAFEFORK_MODE", mode, asked);
	return 0;
}
