#!/bin/sh
# bench/run.sh - run the benchmarks (make bench); with names, only those.
#
# BENCH_QUICK=1: small versions, only to show each one still runs (CI).
# SAFEFORK_SO: the library to preload (make bench passes the build's).
# BENCH_ARGS: extra options for fork_copy.
# Each benchmark prints its own table and targets (never asserted); this
# script says whether each ran to completion and ends with the line
# "bench: N completed, N failed, N skipped".
here=$(dirname "$0")
: "${SAFEFORK_SO:=$here/../src/.libs/libsafefork.so}"
quick=
case "${BENCH_QUICK:-}" in '' | 0) ;; *) quick=1 ;; esac
export BENCH_QUICK

names=${*:-"fork_copy reg_cost many_ranges range_table fork_insns snapshot_skew heap_metadata"}
ok=0 bad=0 skipped=0

run() { # NAME CMD...
	name=$1
	shift
	echo
	echo "================ bench/$name${quick:+ (quick)}"
	t0=$(date +%s)
	"$@"
	rc=$?
	t=$(($(date +%s) - t0))
	case $rc in
	0) ok=$((ok + 1)); echo "---------------- bench/$name: completed in ${t} s" ;;
	77) skipped=$((skipped + 1)); echo "---------------- bench/$name: skipped" ;;
	*) bad=$((bad + 1)); echo "---------------- bench/$name: FAILED (status $rc) after ${t} s" ;;
	esac
}

snapshot() {
	for m in off copy; do
		SAFEFORK_MODE=$m LD_PRELOAD=$SAFEFORK_SO "$here/snapshot_skew" || return 1
	done
}

heap() {
	forks=2000
	[ -n "$quick" ] && forks=100
	for a in "" 1; do for m in off copy; do
		MALLOC_ARENA_MAX=$a SAFEFORK_MODE=$m LD_PRELOAD=$SAFEFORK_SO "$here/heap_metadata" $forks 2>/dev/null || return 1
	done; done
}

for n in $names; do
	case $n in
	fork_copy)
		if [ -n "$quick" ]; then
			run fork_copy "$here/fork_copy" --sizes=0,4,64 --reps=3 --zero-reps=20 --other=64 $BENCH_ARGS
		else
			run fork_copy "$here/fork_copy" $BENCH_ARGS
		fi ;;
	reg_cost)
		if [ -x "$here/reg_cost" ]; then
			run reg_cost "$here/reg_cost" --lib="$SAFEFORK_SO"
		else
			echo; echo "---------------- bench/reg_cost: skipped (built without libibverbs)"
			skipped=$((skipped + 1))
		fi ;;
	many_ranges) run many_ranges "$here/many_ranges" --lib="$SAFEFORK_SO" ;;
	range_table) run range_table "$here/range_table" ;;
	fork_insns) run fork_insns "$here/fork_insns" --lib="$SAFEFORK_SO" ;;
	snapshot_skew) run snapshot_skew snapshot ;;
	heap_metadata) run heap_metadata heap ;;
	*) echo "bench/run.sh: no benchmark $n"; bad=$((bad + 1)) ;;
	esac
done
echo
echo "bench: $ok completed, $bad failed, $skipped skipped"
[ "$bad" -eq 0 ]
