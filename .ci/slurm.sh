#!/usr/bin/env bash
# .ci/slurm.sh - make check-slurm in an already built tree (run by .ci/run
# after its build): the SPANK plugin on a one-node Slurm the test starts
# itself (munged, slurmctld, slurmd from Debian's packages, in a temp
# directory, stopped at the end).  Installs what it needs if missing and
# reconfigures when the Slurm header (or mpicc) arrived after configure ran.
# Bounded: about 1 minute, killed at 5.  Last line: "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

. .ci/need.sh
ci_need "the Slurm scenarios will skip" munge slurmctld slurmd slurm-client libslurm-dev \
	openmpi-bin libopenmpi-dev iproute2
if [ ! -f Makefile ]; then
	echo "no Makefile: build the tree first (.ci/run does)"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
if { grep -q '^SLURM_PLUGIN = no' Makefile && [ -f /usr/include/slurm/spank.h ]; } ||
	{ grep -q '^RUNTIMES_MPI = no' Makefile && command -v mpicc >/dev/null; }; then
	echo "== reconfiguring: the Slurm header or mpicc is installed now"
	./config.status --recheck >/dev/null && ./config.status >/dev/null
fi
grep -m1 -E 'Slurm SPANK plugin' config.log | sed 's/^ *//'

out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout -k 10 300 make -s check-slurm 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
# The script's summary (make's own "Error" line may follow it when something failed).
last=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" | tail -n 1)
if [ -z "$last" ]; then
	[ "$rc" = 124 ] && echo "make check-slurm: timed out after 300 s" ||
		echo "make check-slurm did not finish (status $rc)"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
[ "$(tail -n 1 "$out")" = "$last" ] || echo "$last"
[ "$rc" = 0 ]
