#!/usr/bin/env bash
# .ci/bench.sh - the benchmarks still build and run: `make bench` with
# BENCH_QUICK=1 (small sizes, few repetitions; about 1-2 minutes on 2 shared
# cores, cut off at 5).  Each benchmark that runs to completion counts as
# passed; timings and targets are printed, never asserted.  Expects a
# configured tree (.ci/run builds it first); installs valgrind and strace
# (fork_insns, reg_cost's system-call count) when missing.  Last line:
# "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

. .ci/need.sh
ci_need "those parts skip" valgrind strace

if ! make -j"$(nproc)" bench-build >/tmp/safefork-bench-build.$$ 2>&1; then
	tail -n 20 /tmp/safefork-bench-build.$$
	rm -f /tmp/safefork-bench-build.$$
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
rm -f /tmp/safefork-bench-build.$$
log=bench-quick.log # in the tree: concurrent CI runs on one machine must not share it
BENCH_QUICK=1 timeout 300 make -s bench >"$log" 2>&1
rc=$?
grep -E '^(================|----------------|  .*(MET|NOT MET)$)' "$log" || true
summary=$(grep -E '^bench: [0-9]+ completed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n 1)
if [ -z "$summary" ]; then
	tail -n 20 "$log"
	echo "bench: make bench did not finish (status $rc)"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
read -r ok bad skipped < <(echo "$summary" | sed -E 's/^bench: ([0-9]+) completed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/')
echo "$ok passed, $bad failed, $skipped skipped"
[ "$bad" -eq 0 ]
