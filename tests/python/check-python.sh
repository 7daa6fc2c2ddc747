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
# to copy, and the two runs differ by the library alone.  The outcome of
# every test case (--junit-xml), the regrtest result and its exit status
# (--fail-env-changed: a descriptor, thread or child left behind fails) must
# be the same in both runs, and the library must print nothing.  A test case
# that differs is re-run 20 times in each configuration: unless the
# baseline re-runs show the shimmed run's outcome too (a flaky test), the
# check fails, saying whether the shimmed re-runs reproduced it.
#
# The interpreters run unbuffered (PYTHONUNBUFFERED=1, in both runs): a
# write the kernel cuts short is then lost data in the test's output rather
# than silently retried by a buffer, so a library that interrupts system
# calls shows.
#
# CHECK_PYTHON_TESTS="test_a test_b" runs other tests instead;
# CHECK_PYTHON_MODE=auto (or any SAFEFORK_MODE) shims with that mode.
# Exit status: 0 PASS, 77 SKIP, 1 FAIL; the verdict is the last line.
set -u
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON3:-/usr/bin/python3}
tests=${CHECK_PYTHON_TESTS:-test_subprocess test_os test_fork1 test_multiprocessing_fork}
lib=${SAFEFORK_LIB:-}
mode=${CHECK_PYTHON_MODE:-copy}
reruns=20

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

# run_suite base|shim name [regrtest options]: status into $work/name.rc, seconds into $work/name.sec
run_suite() {
	cfg=$1 name=$2
	shift 2
	start=$(date +%s)
	run_in "$cfg" "$py" -m test -j2 --fail-env-changed --junit-xml "$work/$name.xml" "$@" >"$work/$name.out" 2>&1
	echo $? >"$work/$name.rc"
	echo $(($(date +%s) - start)) >"$work/$name.sec"
}
summary() { # the regrtest result line and its duration
	r=$(sed -n 's/^Tests result: //p' "$work/$1.out" | tail -n 1)
	echo "$1: exit $(cat "$work/$1.rc"), ${r:-no result line}, $(cat "$work/$1.sec") s"
}

echo "running $tests without the library (baseline), then under LD_PRELOAD=$lib SAFEFORK_MODE=$mode"
run_suite base baseline $tests
summary baseline
run_suite shim shim $tests
summary shim

bad=0
if grep -n '^safefork' "$work/shim.out" >"$work/said"; then
	echo "FAIL: the library printed in the shimmed run:"
	head -n 20 "$work/said"
	bad=1
fi
# extract_failures FILE.xml: the failure messages a junit file holds (a difference the re-runs did not show)
extract_failures() {
	"$py" -c 'import sys, xml.etree.ElementTree as ET
for tc in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    for k in tc:
        if k.tag in ("failure", "error"):
            print("%s: %s" % (tc.get("name"), (k.text or k.get("message") or "")[-3000:]))' "$1"
}
# same A B: same outcome for every test case, same regrtest result and exit status (--fail-env-changed:
# a test that leaves a descriptor, a thread or a child behind fails); 0 same, 1 different, 2 no results
same() {
	[ -s "$work/$1.xml" ] && [ -s "$work/$2.xml" ] ||
		{ echo "no results (regrtest output follows)"; tail -n 30 "$work/$1.out" "$work/$2.out"; return 2; }
	"$py" "$here/compare-junit.py" "$work/$1.xml" "$work/$2.xml" >"$work/$2.cmp"
	rc=$?
	cat "$work/$2.cmp"
	for f in $1 $2; do
		sed -n 's/^Tests result: //p' "$work/$f.out" | tail -n 1 >"$work/$f.result"
		cat "$work/$f.rc" >>"$work/$f.result"
	done
	if ! cmp -s "$work/$1.result" "$work/$2.result"; then
		echo "regrtest result differs: $1 $(tr '\n' ' ' <"$work/$1.result"), $2 $(tr '\n' ' ' <"$work/$2.result")"
		sed -n '/^== Tests result/,$p' "$work/$2.out"
		rc=1
	fi
	return $rc
}
same baseline shim
st=$?
if [ $st -eq 2 ]; then
	bad=1
elif [ $st -ne 0 ]; then
	# The test cases that differ, $reruns times more in each configuration (the
	# same module named repeatedly); only cases that differ, and not too many.
	ids=$(sed -n 's/^  differs: \([^:]*\):.*/\1/p' "$work/shim.cmp")
	n=$(echo "$ids" | grep -c .)
	if [ "$n" -eq 0 ] || [ "$n" -gt 20 ]; then
		[ "$n" -eq 0 ] && echo "every test case has the same outcome but the regrtest result differs (see above)"
		[ "$n" -gt 20 ] && echo "$n test cases differ: too many to re-run"
		bad=1
	else
		set --
		for id in $ids; do set -- "$@" -m "$id"; done
		mods=
		for m in $(echo "$ids" | cut -d. -f2 | sort -u); do
			i=0
			while [ $i -lt $reruns ]; do mods="$mods $m"; i=$((i + 1)); done
		done
		echo "re-running the $n differing test case(s) $reruns times in each configuration"
		run_suite base rebase -W "$@" $mods
		run_suite shim reshim -W "$@" $mods
		if "$py" "$here/compare-junit.py" --reruns "$work/baseline.xml" "$work/shim.xml" \
			"$work/rebase.xml" "$work/reshim.xml"; then
			flaky=" (a difference also seen without the library: flaky, see above)"
		else
			echo "what the shimmed run says:"
			grep -E -m1 -A30 '^(FAIL|ERROR|Warning -- )' "$work/reshim.out" ||
				extract_failures "$work/shim.xml"
			bad=1
		fi
	fi
fi
if [ $bad -ne 0 ]; then
	echo "FAIL: CPython's tests behave differently under libsafefork"
	exit 1
fi
echo "PASS: CPython's $tests: same outcomes with libsafefork ($mode mode, 1 MiB registered per interpreter) as without${flaky:-}"
