#!/bin/sh
# run.sh TEST - the LOG_COMPILER of make check-valgrind: run one test program
# under valgrind's memcheck, every process it starts included (the roles it
# re-executes with the library preloaded, their forked children).  A memcheck
# error in any of them makes that process exit 99, which the test reports as
# a failure.
test_prog=$1
shift
supp=$(dirname "$0")/safefork.supp
set -- --tool=memcheck -q --trace-children=yes --error-exitcode=99 \
	--child-silent-after-fork=no --track-origins=yes \
	--suppressions="$supp" ${VALGRIND_EXTRA:-} "$test_prog" "$@"
# Programs linked with the uninstalled library are libtool wrapper scripts.
if head -c 2 "$test_prog" 2>/dev/null | grep -q '^#!'; then
	exec "${LIBTOOL:-./libtool}" --mode=execute valgrind "$@"
fi
exec valgrind "$@"
