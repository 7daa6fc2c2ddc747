/*
 * task.c - one task of a Slurm job step (tests/slurm/run.sh): says whether
 * libsafefork is mapped (/proc/self/maps), the SAFEFORK_MODE it was given,
 * and what the vmsplice "device" sees after a fork during registration:
 *
 *   task R: library mapped|absent, SAFEFORK_MODE=M, verdict coherent|STALE
 *
 * The buffer is registered (safefork_register when the library is loaded)
 * and held by the device; the child writes privately, the parent writes
 * after the fork: coherent when the parent kept the device's pages (the
 * library copied for the child), STALE without the library.  Exit 0 when
 * the scenario ran (run.sh knows which verdict each run must give), 1 when
 * something else went wrong.
 */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

int main(void)
{
	size_t len = (size_t)16 * 4096;
	struct t_case c = { .reg = t_map(len), .reg_len = len, .register_it = 1 };
	const char *rank = getenv("SLURM_PROCID"), *mode = getenv("SAFEFORK_MODE");
	int mapped = t_maps_contains("libsafefork");

	t_watchdog(60);
	int v = t_case_run(&c);
	printf("task %s: library %s, SAFEFORK_MODE=%s, verdict %s\n", rank ? rank : "?", mapped ? "mapped" : "absent",
	       mode ? mode : "(unset)", v == T_COHERENT ? "coherent" : "STALE");
	return 0;
}
