#!/bin/sh
# demo.sh - run hidden_fork_demo without and with libsafefork, one after the other.
#
#   examples/demo.sh [path/to/libsafefork.so [path/to/hidden_fork_demo]]
#
# Defaults are relative to the build tree (the current directory, or the
# directory above this script).  `make demo` passes both paths.
# SPDX-License-Identifier: MIT
set -u

top=.
[ -f "$top/src/.libs/libsafefork.so" ] || top=$(dirname "$0")/..
lib=${1:-$top/src/.libs/libsafefork.so}
demo=${2:-$top/examples/hidden_fork_demo}

[ -f "$lib" ] || { echo "demo.sh: no library at $lib (build first: make)" >&2; exit 2; }
[ -x "$demo" ] || { echo "demo.sh: no demo program at $demo (build first: make)" >&2; exit 2; }
# LD_PRELOAD treats a name without a slash as a library to search for.
case $lib in */*) ;; *) lib=./$lib ;; esac

echo "An app hands a buffer to a NIC (a vmsplice()d pipe), calls a library that"
echo "forks behind its back, then writes the next batch.  What does the NIC send?"
echo
echo "=== 1. without libsafefork ======================================="
env -u LD_PRELOAD -u SAFEFORK_MODE "$demo" || exit $?
echo
echo "=== 2. with libsafefork: LD_PRELOAD=$(basename "$lib") ==========="
env -u SAFEFORK_MODE LD_PRELOAD="$lib" "$demo" || exit $?
