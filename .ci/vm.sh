#!/usr/bin/env bash
# .ci/vm.sh - make check-vm in CI: Debian 11's 5.10 and Debian 12's 6.1 under
# QEMU (TCG) with soft-RoCE, the real-verbs and io_uring scenarios without and
# with the library (tests/vm/run.sh).  Installs what it needs, builds the tree
# if .ci/run has not, and ends with "N passed, N failed, N skipped".
# Duration: 2 to 5 minutes on 2 shared cores (two kernel downloads of ~50 MB and
# their unpacking, 10-30 s each; two boots of 35-115 s each); bounded by VM_TIMEOUT
# (300 s) per boot, so at most about 12 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need="qemu-system-x86 busybox-static cpio kmod iproute2 ibverbs-utils ibverbs-providers libibverbs-dev liburing-dev"
. .ci/need.sh
ci_need "check-vm will skip what it cannot run" $need
if [ ! -f Makefile ]; then
	{ ./autogen.sh && ./configure -q WERROR_CFLAGS=-Werror; } >/dev/null 2>&1 || { echo "configure failed"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
fi
make -j"$(nproc)" >/dev/null 2>&1 || { echo "build failed"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }
start=$(date +%s)
make -s check-vm >check-vm.log 2>&1
rc=$?
grep -v '^make' check-vm.log
echo "check-vm took $(($(date +%s) - start)) s"
last=$(tail -n 1 check-vm.log)
case $last in
*" passed, "*" failed, "*" skipped") echo "$last" ;;
*) echo "make check-vm did not finish (status $rc)"; echo "0 passed, 1 failed, 0 skipped" ;;
esac
[ $rc -eq 0 ]
