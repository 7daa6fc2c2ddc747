#!/usr/bin/env bash
# .ci/runtimes.sh - make check-runtimes in an already built tree (run by
# .ci/run after its build): the library inside Open MPI (Debian's defaults
# and pml ucx, mpirun -np 2), Python's multiprocessing Pool and rdma-core's
# ibv_* programs.  Installs what it needs if missing, reconfigures when
# mpicc arrived after configure ran.  Bounded: about 2 minutes, killed at 7.
# Last line: "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

. .ci/need.sh
ci_need "those scenarios will skip" openmpi-bin libopenmpi-dev ibverbs-utils python3
if [ ! -f Makefile ]; then
	echo "no Makefile: build the tree first (.ci/run does)"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
if grep -q '^RUNTIMES_MPI = no' Makefile && command -v mpicc >/dev/null; then # automake writes the conditionals out: no HAVE_MPI_TRUE in the Makefile
	echo "== reconfiguring: mpicc is installed now"
	./config.status --recheck >/dev/null && ./config.status >/dev/null
fi
grep -m1 'MPI example' config.log | sed 's/^configure: *//'

out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout -k 10 420 make -s check-runtimes 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
last=$(tail -n 1 "$out")
if ! [[ $last =~ ^[0-9]+\ passed,\ [0-9]+\ failed,\ [0-9]+\ skipped$ ]]; then
	[ "$rc" = 124 ] && echo "make check-runtimes: timed out after 420 s" ||
		echo "make check-runtimes did not finish (status $rc)"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
[ "$rc" = 0 ]
