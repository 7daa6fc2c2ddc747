#!/bin/sh
# run.sh PROGRAM... - run the stress tests one after the other, each under
# a time limit (STRESS_TIMEOUT seconds; its own watchdog should fire
# first), its output in PROGRAM.log.  Prints one verdict line per test and
# ends with "N passed, N failed, N skipped".  Exit 1 if any failed.
pass=0 fail=0 skip=0
limit=${STRESS_TIMEOUT:-3600}
echo "STRESS_SCALE=${STRESS_SCALE:-1}"
for t in "$@"; do
	start=$(date +%s)
	timeout -k 10 "$limit" "./$t" >"$t.log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	case $rc in
		0) pass=$((pass + 1)); v=PASS ;;
		77) skip=$((skip + 1)); v=SKIP ;;
		124|137) fail=$((fail + 1)); v="FAIL (timed out after ${limit}s)" ;;
		*) fail=$((fail + 1)); v=FAIL ;;
	esac
	echo "$v: $t (${secs}s)"
	grep -E '^(figures|PASS|SKIP|FAIL)' "$t.log" | sed 's/^/    /'
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
