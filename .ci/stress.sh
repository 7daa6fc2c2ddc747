#!/usr/bin/env bash
# .ci/stress.sh - the stress and fault tests (tests/stress, make check-stress)
# in a bounded version: STRESS_SCALE=0.25 (2 500 forks for register-fork
# instead of the long version's 10 000), about 2 minutes on 2 shared cores;
# each test also has its own watchdog and a time limit.  Needs the tree
# configured and built (.ci/run does that first).  Its last line is
# "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
scale=${STRESS_SCALE:-0.25}
if ! command -v timeout >/dev/null; then
	echo "coreutils' timeout is missing"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
start=$(date +%s)
make -s check-stress STRESS_SCALE="$scale" STRESS_TIMEOUT=600 >tests/stress/ci-output.log 2>&1
rc=$?
grep -vE '^(make|  CC|  CCLD)' tests/stress/ci-output.log | tail -n 60 | grep -v ' passed, .* failed' || true
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' tests/stress/ci-output.log | tail -n 1)
echo "(stress at STRESS_SCALE=$scale: $(( $(date +%s) - start ))s)"
if [ -z "$line" ]; then
	tail -n 20 tests/stress/ci-output.log
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
echo "$line"
[ "$rc" -eq 0 ]
