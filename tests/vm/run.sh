#!/usr/bin/env bash
# run.sh - the QEMU tests (make check-vm) and demo (make demo-vm).
#
#   run.sh BUILDDIR [--demo]
#
# For each Debian kernel (VM_KERNELS, default "bullseye bookworm": 5.10 and
# 6.1) fetch-kernel.sh brings vmlinuz and the soft-RoCE modules, an
# initramfs is made of busybox-static, the host's rdma, ibverbs-utils and
# rxe provider, the test programs (tests/vm/vm-verbs, vm-uring), the library
# and their shared libraries plus that kernel's modules, and the kernel is
# booted under QEMU (TCG: -m 2G -smp 2).  The guest's /init (init.sh) runs
# every scenario without the library and with it in each mode and writes the
# results to the serial console, ending with SAFEFORK-VM-END.
#
# Per kernel and scenario one test: it passes when every run with the
# library is coherent (copy and auto: the child also has the fork-time
# data), and, where the kernel is known not to protect the pages (hugetlb
# before 5.12, everything before 5.9), the control shows the corruption: a
# control that does not is a void run and fails.  Last line:
# "N passed, N failed, N skipped".  Exit 0, 1 (a failure), 77 (cannot run).
#
# Environment: VM_KERNELS, VM_TIMEOUT (seconds per boot, default 300),
# VM_CACHE (where kernels are kept, default BUILDDIR/tests/vm/cache),
# VM_REFRESH=1 (resolve the kernels again), VM_MODES, VM_SCENARIOS.
# SPDX-License-Identifier: MIT
set -u

builddir=$(cd "${1:?usage: run.sh BUILDDIR [--demo]}" && pwd)
demo=0
[ "${2:-}" = --demo ] && demo=1
here=$(cd "$(dirname "$0")" && pwd)
vm=$builddir/tests/vm
cache=${VM_CACHE:-$vm/cache}
timeout_s=${VM_TIMEOUT:-300}
if [ $demo = 1 ]; then
	kernels=${VM_KERNELS:-bullseye}
	modes=${VM_MODES:-control copy}
	only=${VM_SCENARIOS:-hugetlb-read hugetlb-write uring-hugetlb}
else
	kernels=${VM_KERNELS:-bullseye bookworm}
	modes=${VM_MODES:-control copy dontfork auto}
	only=${VM_SCENARIOS:-}
fi

skip() {
	echo "SKIP: check-vm: $*"
	echo "0 passed, 0 failed, 1 skipped"
	exit 77
}

# ---------------------------------------------------------------- what is needed
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed (package qemu-system-x86)"
for t in cpio gzip ldd; do command -v $t >/dev/null || skip "$t not installed"; done
busybox=/bin/busybox
[ -x $busybox ] && ! ldd $busybox >/dev/null 2>&1 || skip "no static $busybox (package busybox-static)"
rdma=$(command -v rdma) || skip "no rdma tool (package iproute2)"
ibv_devices=$(command -v ibv_devices) || skip "no ibv_devices (package ibverbs-utils)"
rxe=$(ls /usr/lib/*/libibverbs/librxe-rdmav*.so 2>/dev/null | head -n 1)
[ -n "$rxe" ] && [ -f /etc/libibverbs.d/rxe.driver ] || skip "no rxe provider (package ibverbs-providers)"
lib=$builddir/src/.libs/libsafefork.so
[ -f "$lib" ] || skip "no $lib (build first)"
ldd "$lib" | grep -q libasan && skip "a sanitizer build: the guest preloads the library into uninstrumented programs"
progs=""
for p in vm-verbs vm-uring; do
	[ -x "$vm/$p" ] && progs="$progs $p"
done
[ -n "$progs" ] || skip "neither tests/vm/vm-verbs nor vm-uring was built (libibverbs and liburing headers missing)"

# ---------------------------------------------------------------- the initramfs, common part
root=$vm/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,sf}
# add HOSTFILE [DEST]: a file at DEST (default: the same path) and every shared library ldd names for it
add() {
	local src=$1 dst=${2:-$1} l
	mkdir -p "$root$(dirname "$dst")"
	cp -L "$src" "$root$dst" || return 1
	for l in $(ldd "$src" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
		[ -e "$root$l" ] && continue
		mkdir -p "$root$(dirname "$l")"
		cp -L "$l" "$root$l" || return 1
	done
}
add $busybox /bin/busybox &&
	add "$rdma" /bin/rdma &&
	add "$ibv_devices" /bin/ibv_devices &&
	add "$rxe" &&
	add /etc/libibverbs.d/rxe.driver &&
	add "$lib" /sf/libsafefork.so &&
	add "$here/init.sh" /init || skip "could not assemble the initramfs"
for p in $progs; do
	add "$vm/$p" "/sf/$p" || skip "could not add $p"
done
chmod 755 "$root/init"
[ $demo = 1 ] || [ -n "$only" ] && echo "$only" >"$root/etc/vm-scenarios"
echo "$modes" >"$root/etc/vm-modes"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -6) >"$vm/common.cpio.gz" ||
	skip "cpio failed"

# ---------------------------------------------------------------- per kernel
pass=0 fail=0 skipped=0
summary=""
for k in $kernels; do
	kdir=$cache/kernels/$k
	t0=$(date +%s)
	sh "$here/fetch-kernel.sh" "$k" "$kdir" 2>"$vm/fetch-$k.err"
	rc=$?
	t1=$(date +%s)
	if [ $rc -ne 0 ]; then
		echo "SKIP: kernel $k: $(tail -n 1 "$vm/fetch-$k.err")"
		[ $rc -eq 77 ] && skipped=$((skipped + 1)) || fail=$((fail + 1))
		continue
	fi
	release=$(cat "$kdir/release")
	kroot=$vm/initramfs-$k
	rm -rf "$kroot"
	mkdir -p "$kroot/modules"
	cp "$kdir"/modules/*.ko "$kroot/modules/" && cp "$kdir/modules.list" "$kroot/"
	(cd "$kroot" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -6) >"$vm/kernel-$k.cpio.gz"
	cat "$vm/common.cpio.gz" "$vm/kernel-$k.cpio.gz" >"$vm/initrd-$k.img"

	log=$vm/serial-$k.log
	rm -f "$log"
	echo "== kernel $release ($k: $(cat "$kdir/package")), initramfs $(($(stat -c %s "$vm/initrd-$k.img") / 1024)) KiB," \
		"kernel ready in $((t1 - t0)) s; booting under QEMU (TCG, -m 2G -smp 2, timeout ${timeout_s} s)"
	timeout -k 10 "$timeout_s" qemu-system-x86_64 -accel tcg -m 2G -smp 2 -nodefaults -display none -no-reboot \
		-monitor none -serial "file:$log" -kernel "$kdir/vmlinuz" -initrd "$vm/initrd-$k.img" \
		-append "console=ttyS0 panic=-1 quiet loglevel=3" </dev/null >"$vm/qemu-$k.out" 2>&1
	qrc=$?
	t2=$(date +%s)
	tr -d '\r' <"$log" >"$log.txt" 2>/dev/null || : >"$log.txt"
	booted=$(sed -n 's/^BOOTED [^ ]* //p' "$log.txt" | head -n 1)
	echo "   boot to /init: ${booted:-?} s guest time; whole run $((t2 - t1)) s (qemu status $qrc)"
	if ! grep -q '^SAFEFORK-VM-END' "$log.txt"; then
		why="no end marker on the serial console"
		[ $qrc -eq 124 ] && why="timed out after $timeout_s s"
		echo "FAIL: kernel $release: $why; last lines of $log:"
		tail -n 15 "$log.txt" | sed 's/^/   | /'
		cat "$vm/qemu-$k.out" | sed 's/^/   qemu: /'
		fail=$((fail + 1))
		continue
	fi
	if grep -q '^SETUP-FAIL' "$log.txt"; then
		echo "FAIL: kernel $release: $(grep '^SETUP-FAIL' "$log.txt" | head -n 1)"
		fail=$((fail + 1))
		continue
	fi
	sed -n 's/^PROBE safefork: /   auto probe: /p' "$log.txt"

	if [ $demo = 1 ]; then
		awk -f "$here/demo.awk" "$log.txt"
		continue
	fi
	awk -v release="$release" -v modes="$modes" -f "$here/verdict.awk" "$log.txt" >"$vm/verdict-$k.txt"
	sed '/^COUNTS /d' "$vm/verdict-$k.txt"
	read -r _ p f s < <(grep '^COUNTS ' "$vm/verdict-$k.txt")
	pass=$((pass + p)) fail=$((fail + f)) skipped=$((skipped + s))
	summary="$summary $release: $p passed, $f failed, $s skipped;"
done
[ $demo = 1 ] && exit $((fail > 0))
echo "check-vm:$summary"
echo "$pass passed, $fail failed, $skipped skipped"
[ $fail -eq 0 ]
