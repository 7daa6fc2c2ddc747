#!/bin/sh
# check-python.sh - CPython's own fork/exec tests, without and with libsafefork.
#
# make check-python runs this with SAFEFORK_LIB set to the built library.
# It runs test_subprocess, test_os, test_fork1 and test_multiprocessing_fork
# (Debian: libpython3.11-testsuite) with /usr/bin/python3 twice: a baseline
# without the library, then every Python process under
# LD_PRELOAD=libsafefork.so SAFEFORK_MODE=copy.  In both runs hook/ is on
# PYTHONPATH: its sitecustomize registers a 1 MiB buffer in every interpreter
# (a no-op without the library), so the shimmed run's forks all have a range
# to copy, and the two runs differ by the library alone.
#
# Both runs must give every test case (--junit-xml) the same outcome and
# name the same test files as having altered the execution environment (a
# descriptor, thread or child left behind), and the library must print
# nothing.  A test case that differs is re-run 20 times in each
# configuration: unless the baseline re-runs show the shimmed run's outcome
# too (a flaky test), the check fails, saying whether the shimmed re-runs
# reproduced it.  A test file that does not complete (a hang, killed by
# regrtest's --timeout, or a crash: test_multiprocessing_fork's
# test_terminate sometimes hangs without the library too) is run once more
# in that configuration, with a warning and the tracebacks regrtest dumped.
#
# The interpreters run unbuffered (PYTHONUNBUFFERED=1, in both runs): a
# write the kernel cuts short is then lost data in the test's output rather
# than silently retried by a buffer, so a library that interrupts system
# calls shows.
#
# CHECK_PYTHON_TESTS="test_a test_b" runs other tests instead;
# CHECK_PYTHON_MODE=auto (or any SAFEFORK_MODE) shims with that mode;
# CHECK_PYTHON_TIMEOUT=seconds per test file (300).
# Exit status: 0 PASS, 77 SKIP, 1 FAIL; the verdict is the last line.
set -u
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON3:-/usr/bin/python3}
tests=${CHECK_PYTHON_TESTS:-test_subprocess test_os test_fork1 test_multiprocessing_fork}
lib=${SAFEFORK_LIB:-}
mode=${CHECK_PYTHON_MODE:-copy}
reruns=20
timeout=${CHECK_PYTHON_TIMEOUT:-300} # seconds per test file (test_multiprocessing_fork takes about 70)

[ -n "$lib" ] && [ -f "$lib" ] || { echo "FAIL: SAFEFORK_LIB does not name the built library (run make check-python)"; exit 1; }
[ -x "$py" ] || { echo "SKIP: no $py"; exit 77; }
if [ -n "${T_PRELOAD_PREFIX:-}" ]; then
	echo "SKIP: a sanitizer build (its library needs AddressSanitizer in every Python process); run check-python on a normal build"
	exit 77
fi
"$py" -c 'import test.libregrtest, test.test_subprocess, test.test_multiprocessing_fork' 2>/dev/null ||
	{ echo "SKIP: CPython's test suite is not installed for $py (Debian: libpython3.11-testsuite)"; exit 77; }

work=$(mktemp -d /tmp/safefork-check-python.XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

# The two configurations: run_in base|shim command...
run_in() {
	cfg=$1
	shift
	if [ "$cfg" = shim ]; then
		env -u SAFEFORK_LOG PYTHONUNBUFFERED=1 PYTHONPATH="$here/hook" LD_PRELOAD="$lib" SAFEFORK_MODE="$mode" "$@"
	else
		env -u LD_PRELOAD -u SAFEFORK_MODE -u SAFEFORK_LOG PYTHONUNBUFFERED=1 PYTHONPATH="$here/hook" "$@"
	fi
}

# The hook works, prints nothing and leaves no descriptor open (same fds as without site).
probe='import sitecustomize as s, os; print(s.registered, s.error, sorted(os.listdir("/proc/self/fd")))'
nosite=$("$py" -S -c 'import os; print(sorted(os.listdir("/proc/self/fd")))' 2>&1)
for cfg in base shim; do
	want=False
	[ $cfg = shim ] && want=True
	got=$(run_in $cfg "$py" -c "$probe" 2>&1)
	[ "$got" = "$want None $nosite" ] ||
		{ echo "FAIL: the sitecustomize hook ($cfg): expected \"$want None $nosite\", got \"$got\""; exit 1; }
done
echo "hook: registers 1 MiB in every interpreter under the library, silent, no descriptor left open"

# run_suite base|shim name [regrtest arguments]: results in $work/name.{xml,out}, seconds in $work/name.sec
run_suite() {
	cfg=$1 name=$2
	shift 2
	start=$(date +%s)
	run_in "$cfg" "$py" -m test -j2 --timeout $timeout --junit-xml "$work/$name.xml" "$@" >"$work/$name.out" 2>&1
	echo "$(($(date +%s) - start))" >"$work/$name.sec"
	[ -s "$work/$name.xml" ] || echo '<testsuites />' >"$work/$name.xml"
}
summary() { # name: its regrtest result line and duration
	r=$(sed -n 's/^Tests result: //p' "$work/$1.out" | tail -n 1)
	echo "$1: ${r:-no result line}, $(cat "$work/$1.sec") s"
}
# complete base|shim name: run again, once, the test files of run name that did not complete;
# sets $results to the comma-separated junit files of the configuration
complete() {
	results=$work/$2.xml
	lost=$("$py" "$here/compare-junit.py" --lost "$results" $tests)
	[ -z "$lost" ] && return
	echo "WARNING: $lost did not complete in the $2 run; regrtest says:"
	grep -E -m1 -B2 -A40 'crashed|timed out|Timeout' "$work/$2.out"
	run_suite "$1" "$2-again" $lost
	summary "$2-again"
	results="$results,$work/$2-again.xml"
	again=$("$py" "$here/compare-junit.py" --lost "$results" $lost)
	if [ -n "$again" ]; then
		echo "FAIL: $again did not complete twice in the $2 run:"
		grep -E -m1 -B2 -A40 'crashed|timed out|Timeout' "$work/$2-again.out"
		bad=1 why="$why; $again did not complete twice in the $2 run"
	fi
	warn="$warn; $lost repeated in the $2 run"
}
# env_changed name...: the test files regrtest says altered the execution environment
env_changed() {
	for f in "$@"; do cat "$work/$f.out" 2>/dev/null; done |
		awk '/altered the execution environment:$/ { on = 1; next } on && /^    / { for (i = 1; i <= NF; i++) print $i; next } { on = 0 }' |
		sort -u | tr '\n' ' '
}

echo "running $tests without the library (baseline), then under LD_PRELOAD=$lib SAFEFORK_MODE=$mode"
bad=0 warn= why=
run_suite base baseline $tests
summary baseline
run_suite shim shim $tests
summary shim
complete base baseline
base_results=$results
complete shim shim
shim_results=$results

if grep -n '^safefork' "$work"/shim*.out >"$work/said"; then
	echo "FAIL: the library printed in the shimmed run:"
	head -n 20 "$work/said"
	bad=1 why="$why; the library printed"
fi
base_env=$(env_changed baseline baseline-again)
shim_env=$(env_changed shim shim-again)
if [ "$base_env" != "$shim_env" ]; then
	echo "FAIL: test files that altered the execution environment: baseline: ${base_env:-none}; shim: ${shim_env:-none}"
	grep -E -B1 -A3 '^Warning -- ' "$work"/shim*.out | head -n 40
	bad=1 why="$why; a different execution environment left behind"
fi
"$py" "$here/compare-junit.py" "$base_results" "$shim_results" | tee "$work/cmp"
ids=$(sed -n 's/^  differs: \([^ ]*\) .*/\1/p' "$work/cmp")
n=$(echo "$ids" | grep -c .)
if [ "$n" -gt 20 ]; then
	echo "$n test cases differ: too many to re-run"
	bad=1 why="$why; $n test cases differ"
elif [ "$n" -gt 0 ]; then
	# The test cases that differ, $reruns times more in each configuration
	# (each test file named $reruns times, only those test cases selected).
	set --
	for id in $ids; do set -- "$@" -m "$id"; done
	mods=
	for m in $(sed -n 's/^  differs: .* \[\(.*\)\]:.*/\1/p' "$work/cmp" | sort -u); do
		i=0
		while [ $i -lt $reruns ]; do mods="$mods $m"; i=$((i + 1)); done
	done
	echo "re-running the $n differing test case(s) $reruns times in each configuration"
	run_suite base rebase -W "$@" $mods
	run_suite shim reshim -W "$@" $mods
	if "$py" "$here/compare-junit.py" --reruns "$base_results" "$shim_results" "$work/rebase.xml" "$work/reshim.xml"; then
		warn="$warn; a difference also seen without the library (flaky, see above)"
	else
		echo "what the shimmed run says:"
		grep -E -m1 -A30 '^(FAIL|ERROR):' "$work/reshim.out" || "$py" -c 'import sys, xml.etree.ElementTree as ET
for path in sys.argv[1].split(","):
    for tc in ET.parse(path).getroot().iter("testcase"):
        for k in tc:
            if k.tag in ("failure", "error"):
                print("%s: %s" % (tc.get("name"), (k.text or k.get("message") or "")[-3000:]))' "$shim_results"
		bad=1 why="$why; test cases differ (see above)"
	fi
fi
if [ $bad -ne 0 ]; then
	echo "FAIL: CPython's $tests under libsafefork ($mode mode): ${why#; }"
	exit 1
fi
echo "PASS: CPython's $tests: same outcomes with libsafefork ($mode mode, 1 MiB registered per interpreter) as without${warn:+ (WARNING${warn#;})}"
