#!/usr/bin/env bash
# .ci/analysis.sh - static and dynamic analysis, bounded (about 5 minutes on
# 2 cores): make lint (cppcheck + clang-tidy, about 40 s), make check-valgrind
# (21 test programs under memcheck, about 80 s), make fuzz (each libFuzzer
# target for FUZZ_SECONDS, 45 s by default).  Works on a clean clone as root:
# installs what it needs, builds in a copy of the tree of its own.  Its last
# line is "N passed, N failed, N skipped" (one per step; a step whose tool
# cannot be had is skipped, saying why).
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
export DEBIAN_FRONTEND=noninteractive
fuzz_seconds=${FUZZ_SECONDS:-45}
pass=0 fail=0 skip=0
step() { # step NAME STATUS(0 pass, 77 skip, else fail) SECONDS
	case $2 in
	0) pass=$((pass + 1)); echo "  [analysis] PASS: $1 ($3 s)" ;;
	77) skip=$((skip + 1)); echo "  [analysis] SKIP: $1" ;;
	*) fail=$((fail + 1)); echo "  [analysis] FAIL: $1 ($3 s)" ;;
	esac
}

# Tools: clang (libFuzzer is in libclang-rt-14-dev on Debian 12), cppcheck,
# clang-tidy, valgrind.
. .ci/need.sh
ci_need "the steps that need them will skip" clang libclang-rt-14-dev cppcheck clang-tidy valgrind

# A build of our own (an in-tree configure forbids VPATH builds): a pristine copy.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # some tests run a role as user nobody
git ls-files -z | xargs -0 cp --parents -t "$work"
cd "$work"
echo "== analysis: build"
if ! { ./autogen.sh >/dev/null 2>&1 && ./configure -q WERROR_CFLAGS=-Werror >/dev/null &&
	make -j"$(nproc)" >build.log 2>&1; }; then
	tail -n 20 build.log 2>/dev/null
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi

echo "== make lint (cppcheck, clang-tidy)"
t0=$SECONDS
if command -v cppcheck >/dev/null && command -v clang-tidy >/dev/null; then
	make lint >lint.log 2>&1
	rc=$?
	grep -E ': (warning|error|style|performance|portability)|clean$' lint.log | head -n 40
else
	echo "cppcheck or clang-tidy missing"; rc=77
fi
step "make lint" $rc $((SECONDS - t0))

echo "== make check-valgrind (memcheck over the fork path)"
t0=$SECONDS
if command -v valgrind >/dev/null; then
	make -j"$(nproc)" check-valgrind >valgrind.log 2>&1
	rc=$?
	grep -E '^(PASS|FAIL|SKIP|ERROR):' valgrind.log | grep -v '^PASS' || true
	grep -E '^# (TOTAL|PASS|FAIL|SKIP)' tests/valgrind/test-suite.log 2>/dev/null | tr '\n' ' '; echo
	[ $rc -ne 0 ] && grep -E -B2 -A12 '^==[0-9]+== [A-Z]' tests/*.log 2>/dev/null | head -n 60
else
	echo "valgrind missing"; rc=77
fi
step "make check-valgrind" $rc $((SECONDS - t0))

echo "== make fuzz (libFuzzer, ${fuzz_seconds} s per target)"
t0=$SECONDS
if command -v clang >/dev/null && echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
	clang -x c -fsanitize=fuzzer,address - -o fuzz-probe >/dev/null 2>&1; then
	make fuzz FUZZ_SECONDS="$fuzz_seconds" >fuzz.log 2>&1
	rc=$?
	grep -E '^(== |PASS|FAIL|#[0-9]+.*DONE|fuzz-)' fuzz.log
	[ $rc -ne 0 ] && { tail -n 30 fuzz.log; for c in tests/fuzz/crash-*; do [ -f "$c" ] && { echo "$c:"; od -c "$c" | head -n 5; }; done; }
else
	echo "clang cannot link libFuzzer (clang, libclang-rt-14-dev)"; rc=77
fi
step "make fuzz" $rc $((SECONDS - t0))

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
