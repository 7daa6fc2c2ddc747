#!/bin/busybox sh
# init.sh - /init of the QEMU test guest (tests/vm/run.sh builds the initramfs).
#
# Loads the soft-RoCE modules, makes rxe0 on lo, reserves huge pages, then
# runs every scenario of /sf/vm-verbs and /sf/vm-uring without the library
# (control) and with LD_PRELOAD=/sf/libsafefork.so in each mode, and prints
# on the serial console, one line each:
#   BOOTED <release> <seconds since boot>
#   R <mode> RESULT <scenario> <verdict> ...     (mode: control, copy, dontfork, auto)
#   PROBE <line>          what the library's auto probe found (SAFEFORK_DEBUG=1)
#   AUTO <scenario> <what auto did at the fork, from SAFEFORK_DEBUG>
#   NOTE <mode> <scenario> <line>   anything the library printed in a run
#   SETUP-FAIL <reason>
# and last the end marker SAFEFORK-VM-END, then powers off.
# SPDX-License-Identifier: MIT
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp
mount -t tmpfs tmp /tmp

end() {
	echo "SAFEFORK-VM-END"
	sync
	poweroff -f
	sleep 10
}
fail() {
	echo "SETUP-FAIL $*"
	end
}

up=$(cut -d' ' -f1 /proc/uptime)
echo "BOOTED $(uname -r) $up"
read -r MODES </etc/vm-modes 2>/dev/null || MODES="control copy dontfork auto"
read -r ONLY </etc/vm-scenarios 2>/dev/null || ONLY=""

ip link set lo up || fail "ip link set lo up"
for m in $(cat /modules.list); do
	insmod "/modules/$m" || fail "insmod $m"
done
rdma link add rxe0 type rxe netdev lo || fail "rdma link add rxe0 type rxe netdev lo"
i=0
while [ ! -e /dev/infiniband/uverbs0 ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -e /dev/infiniband/uverbs0 ] || fail "no /dev/infiniband/uverbs0 after rdma link add"
echo 64 >/proc/sys/vm/nr_hugepages
echo "INFO nr_hugepages=$(cat /proc/sys/vm/nr_hugepages) thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled)"
echo "INFO devices: $(ibv_devices 2>&1 | awk 'NR > 2 { printf "%s ", $1 }')"
ulimit -l unlimited

# run MODE PROG SCENARIO: one program run, its RESULT line prefixed with the mode
run() {
	mode=$1
	prog=$2
	sc=$3
	case $mode in
	control) timeout 90 env -u LD_PRELOAD -u SAFEFORK_MODE "$prog" "$sc" >/tmp/out 2>/tmp/err ;;
	auto) timeout 90 env LD_PRELOAD=/sf/libsafefork.so SAFEFORK_MODE=auto SAFEFORK_DEBUG=1 "$prog" "$sc" >/tmp/out 2>/tmp/err ;;
	*) timeout 90 env LD_PRELOAD=/sf/libsafefork.so SAFEFORK_MODE="$mode" "$prog" "$sc" >/tmp/out 2>/tmp/err ;;
	esac
	rc=$?
	if grep -q '^RESULT ' /tmp/out; then
		grep '^RESULT ' /tmp/out | sed "s/^/R $mode /"
	else
		echo "R $mode RESULT $sc ERROR exit status $rc$([ $rc = 143 ] && echo ' (killed after 90 s)'): $(tail -n 1 /tmp/err)"
	fi
	if [ "$mode" = auto ] && [ -z "$probed" ] && grep -q '^safefork: kernel' /tmp/err; then
		grep '^safefork: \(kernel\|mode\)' /tmp/err | sed 's/^/PROBE /'
		probed=1
	fi
	if [ "$mode" = auto ]; then
		f=$(grep '^safefork: pid [0-9]*: fork via ' /tmp/err | head -n 1 | sed 's/^safefork: pid [0-9]*: //')
		echo "AUTO $sc ${f:-no fork protected (all left to the kernel)}"
	fi
	# anything else the library said (auto's debug lines aside)
	grep '^safefork:' /tmp/err | grep -v -e '^safefork: kernel' -e '^safefork: mode' -e '^safefork: pid [0-9]*: fork via ' |
		sort -u | sed "s/^/NOTE $mode $sc /"
}

probed=""
for prog in /sf/vm-verbs /sf/vm-uring; do
	[ -x "$prog" ] || continue
	for sc in $("$prog" --list); do
		if [ -n "$ONLY" ]; then
			case " $ONLY " in *" $sc "*) ;; *) continue ;; esac
		fi
		for mode in $MODES; do
			run "$mode" "$prog" "$sc"
		done
	done
done
end
