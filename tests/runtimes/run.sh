#!/usr/bin/env bash
# tests/runtimes/run.sh - the library inside real runtimes and programs not
# written here (make check-runtimes; CI: .ci/runtimes.sh).
#
#   mpi-ob1      tests/runtimes/mpi-fork under mpirun -np 2, Debian's defaults
#   mpi-ucx      the same with --mca pml ucx (UCX's and Open MPI's memory hooks)
#   mpi-ucx-reloc  and with UCX hooking through relocations instead of code
#   mpi-example  examples/mpi_runtime (the explicit API) under mpirun -np 2
#   python-pool  multiprocessing Pool (fork), 4 workers over 1 000 tasks
#   verbs-utils  rdma-core's ibv_devices, ibv_devinfo, ibv_*_pingpong
#
# Each scenario prints PASS, SKIP or FAIL with the reason; the last line is
# "N passed, N failed, N skipped".  Every program runs under a timeout
# (about 2 minutes in all when nothing hangs).  Exit 1 if anything failed.
#
# Usage: run.sh BUILDDIR SRCDIR MPI   (MPI: yes when configure built the MPI
# programs; SAFEFORK_LIB: the built library)
set -u
build=$1 src=$2 mpi=$3
lib=${SAFEFORK_LIB:?SAFEFORK_LIB is not set (run through make check-runtimes)}
unset LD_PRELOAD SAFEFORK_MODE
tmp=$(mktemp -d "${TMPDIR:-/tmp}/safefork-runtimes.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0 skip=0

verdict() { # PASS|SKIP|FAIL scenario reason
	echo "$1: $2: $3"
	case $1 in
	PASS) pass=$((pass + 1)) ;;
	SKIP) skip=$((skip + 1)) ;;
	*) fail=$((fail + 1)) ;;
	esac
}
indent() { sed 's/^/    /' "$@"; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# ---------------------------------------------------------------- MPI
mpirun_args=(--oversubscribe -np 2)
[ "$(id -u)" = 0 ] && mpirun_args+=(--allow-run-as-root)

# mpi_run OUT LABEL -- mpirun options: run tests/runtimes/mpi-fork; 0 when mpirun succeeded.
mpi_run() {
	local out=$1
	shift
	timeout -k 5 90 mpirun "${mpirun_args[@]}" "$@" "$build/tests/runtimes/mpi-fork" >"$out" 2>&1
}

# mpi_scenario NAME MPIRUN-OPTIONS...: the three configurations and their checks.
mpi_scenario() {
	local name=$1
	shift
	local t0 r
	problems="" # what went wrong, for the FAIL line
	t0=$(now)
	# The control first: without the library.
	mpi_run "$tmp/$name.none" "$@"
	r=$?
	if [ $r -ne 0 ]; then
		problems="without the library: mpirun status $r"
		echo "  $name $problems"
		indent "$tmp/$name.none" | head -n 20
		return 1
	fi
	local cfg want
	for cfg in lib off; do
		local extra=(-x "LD_PRELOAD=$lib")
		want=coherent
		if [ $cfg = off ]; then
			extra+=(-x SAFEFORK_MODE=off)
			want=STALE
		fi
		mpi_run "$tmp/$name.$cfg" "$@" "${extra[@]}"
		r=$?
		[ $r -eq 0 ] || problems="$problems; $cfg: mpirun status $r"
		[ "$(grep -c "verdict $want;" "$tmp/$name.$cfg")" = 2 ] ||
			problems="$problems; $cfg: not both ranks $want"
		! grep -q safefork "$tmp/$name.$cfg" || problems="$problems; $cfg: the library spoke"
		# Open MPI's memory hooks see the same calls with and without the library.
		diff <(grep ': hooks:' "$tmp/$name.none" | sort) <(grep ': hooks:' "$tmp/$name.$cfg" | sort) \
			>/dev/null || problems="$problems; $cfg: Open MPI's memory hooks differ from the run without the library"
	done
	[ "$(grep -c 'verdict STALE;' "$tmp/$name.none")" = 2 ] ||
		problems="$problems; none: not both ranks STALE (the control must show the corruption)"
	echo "  $name ($(took "$t0") for 3 runs of 2 ranks):"
	for cfg in lib off none; do
		echo "   [$cfg]"
		grep '^rank' "$tmp/$name.$cfg" | sort | indent
	done
	if [ -n "$problems" ]; then
		problems=${problems#; }
		for cfg in lib off; do indent "$tmp/$name.$cfg" | grep -v '^    rank' | head -n 20; done
		return 2
	fi
	return 0
}

hooks_note() { # NAME: what the control run says about Open MPI's memory hooks
	local l
	l=$(grep -m1 ': hooks:' "$tmp/$1.none" | sed 's/^rank [0-9]*: hooks: //')
	echo "$l"
}

if [ "$mpi" != yes ] || ! command -v mpirun >/dev/null; then
	why="no mpicc or no mpirun (configure: MPI example: no)"
	verdict SKIP mpi-ob1 "$why"
	verdict SKIP mpi-ucx "$why"
	verdict SKIP mpi-ucx-reloc "$why"
else
	# Debian's defaults: ob1 over vader (shared memory) and tcp, /etc/openmpi's parameters.
	if mpi_scenario mpi-ob1; then
		verdict PASS mpi-ob1 "2 ranks: 5 system() + 1 fork() each, then MPI_Sendrecv into the registered buffer and MPI_Allreduce: coherent with the library, stale with SAFEFORK_MODE=off and without it; hooks: $(hooks_note mpi-ob1)"
	else
		verdict FAIL mpi-ob1 "$problems"
	fi
	# pml ucx: Debian's openmpi-mca-params.conf says pml = ^ucx (the command line overrides it), and
	# Open MPI 4.1 accepts UCX only over its listed transports and devices (pml_ucx_tls, pml_ucx_devices:
	# InfiniBand ones by default): with none here, let it use any, and UCX shared memory and tcp.
	ucx=(--mca pml ucx)
	mpi_run "$tmp/ucx-probe" "${ucx[@]}"
	if [ $? -ne 0 ]; then
		echo "  --mca pml ucx alone: $(grep -m1 -E 'No components|not available|select' "$tmp/ucx-probe" ||
			head -n 1 "$tmp/ucx-probe")"
		ucx+=(--mca pml_ucx_tls any --mca pml_ucx_devices any -x UCX_TLS=self,sm,tcp)
		echo "  retrying with ${ucx[*]:3}"
	fi
	if mpi_run "$tmp/ucx-probe" "${ucx[@]}"; then
		if ! grep -q 'level [1-9]' "$tmp/ucx-probe"; then
			verdict FAIL mpi-ucx "pml ucx ran but Open MPI's memory hooks are not active: $(hooks_note ucx-probe)"
		elif mpi_scenario mpi-ucx "${ucx[@]}"; then
			verdict PASS mpi-ucx "2 ranks over pml ucx ${ucx[*]:3}: protected with the library, stale without it; hooks: $(hooks_note mpi-ucx), the same with the library"
		else
			verdict FAIL mpi-ucx "$problems"
		fi
		# UCX's other way of hooking: relocation (GOT) patching instead of code patching (bistro).
		if mpi_scenario mpi-ucx-reloc "${ucx[@]}" -x UCX_MEM_MMAP_HOOK_MODE=reloc; then
			verdict PASS mpi-ucx-reloc "the same with UCX_MEM_MMAP_HOOK_MODE=reloc; hooks: $(hooks_note mpi-ucx-reloc), the same with the library"
		else
			verdict FAIL mpi-ucx-reloc "$problems"
		fi
	else
		why="pml ucx cannot run here: $(grep -v '^-*$' "$tmp/ucx-probe" | head -n 3 | tr '\n' ' ')"
		verdict SKIP mpi-ucx "$why"
		verdict SKIP mpi-ucx-reloc "$why"
	fi
fi

# The example for runtimes: linked with the library, uses the explicit API.
if [ "$mpi" != yes ] || ! command -v mpirun >/dev/null; then
	verdict SKIP mpi-example "examples/mpi_runtime is not built (configure: MPI example: no)"
else
	t0=$(now)
	timeout -k 5 90 mpirun "${mpirun_args[@]}" "$build/examples/mpi_runtime" >"$tmp/example" 2>&1
	r=$?
	indent "$tmp/example"
	if [ $r -eq 0 ] && [ "$(grep -c 'snapshot ok' "$tmp/example")" = 2 ] && ! grep -q safefork: "$tmp/example"; then
		verdict PASS mpi-example "examples/mpi_runtime under mpirun -np 2 ($(took "$t0")): register, safefork_fork, unregister"
	else
		verdict FAIL mpi-example "mpirun status $r, or a rank did not say 'snapshot ok'"
	fi
fi

# ---------------------------------------------------------------- Python
t0=$(now)
"$SHELL" "$src/tests/python/run.sh" "$src/tests/runtimes/python-pool.py" >"$tmp/pool" 2>&1
r=$?
indent "$tmp/pool"
last=$(tail -n 1 "$tmp/pool")
case $r in
0) verdict PASS python-pool "${last#PASS: } ($(took "$t0") for 4 configurations)" ;;
77) verdict SKIP python-pool "${last#SKIP: }" ;;
*) verdict FAIL python-pool "${last#FAIL: }" ;;
esac

# ---------------------------------------------------------------- rdma-core's programs
# Without a device they must fail exactly as they do without the library:
# same status, same output (numbers of 4 digits or more, such as pids, masked).
t0=$(now)
progs=(ibv_devices ibv_devinfo ibv_rc_pingpong ibv_uc_pingpong ibv_ud_pingpong ibv_srq_pingpong ibv_xsrq_pingpong)
if ls /sys/class/infiniband/* >/dev/null 2>&1; then
	progs=(ibv_devices ibv_devinfo) # with a device the pingpongs would wait for a peer
	echo "  RDMA devices present: only ibv_devices and ibv_devinfo are compared"
fi
ran=0 missing="" problems=""
for p in "${progs[@]}"; do
	if ! command -v "$p" >/dev/null; then
		missing="$missing $p"
		continue
	fi
	for args in "" "-h"; do # no argument; an option they reject
		timeout -k 2 10 "$p" $args >"$tmp/v.none" 2>&1
		r0=$?
		LD_PRELOAD=$lib timeout -k 2 10 "$p" $args >"$tmp/v.lib" 2>&1
		r1=$?
		ran=$((ran + 1))
		echo "  $p $args: status $r0 without, $r1 with the library; $(head -n 1 "$tmp/v.none")"
		[ $r0 -eq $r1 ] || problems="$problems; $p $args: status $r0 without the library, $r1 with it"
		[ $r0 -ne 124 ] && [ $r0 -ne 137 ] || problems="$problems; $p $args: timed out"
		cmp -s <(sed -E 's/[0-9]{4,}/N/g' "$tmp/v.none") <(sed -E 's/[0-9]{4,}/N/g' "$tmp/v.lib") ||
			problems="$problems; $p $args: output differs ($(diff "$tmp/v.none" "$tmp/v.lib" | head -n 3 | tr '\n' ' '))"
		! grep -q safefork "$tmp/v.lib" || problems="$problems; $p $args: the library spoke"
	done
done
if [ $ran -eq 0 ]; then
	verdict SKIP verbs-utils "none of ${progs[*]} is installed (ibverbs-utils)"
elif [ -n "$problems" ]; then
	verdict FAIL verbs-utils "${problems#; }"
else
	verdict PASS verbs-utils "$ran runs ($(took "$t0")): same status and output with LD_PRELOAD as without${missing:+; not installed:$missing}"
fi

echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
