#!/usr/bin/env bash
# tests/slurm/run.sh - the SPANK plugin (tools/spank_safefork.c) on a
# one-node Slurm started here (make check-slurm; CI: .ci/slurm.sh).
#
# munged (a key generated here), slurmctld and slurmd run in the foreground
# from Debian's packages with everything they write in one temp directory
# (ports chosen free, no accounting, proctrack/linuxproc, task/none); the
# plugstack.conf loads the plugin from the build tree.  Then:
#   rejected      srun/sbatch refuse --safefork=bogus, saying why
#   srun-copy     srun -n 2 --safefork=copy: both tasks map the library and
#                 stay coherent through a fork during registration; the same
#                 without the option: absent and STALE (the control)
#   no-effect     without the option, the tasks' environment has the same
#                 variables as under an empty plugstack.conf
#   environment   LD_PRELOAD the job had is kept after the library, not doubled;
#                 the option's mode wins over an exported SAFEFORK_MODE
#   mpi           tests/runtimes/mpi-fork and examples/mpi_runtime, 2 ranks
#                 launched by srun --mpi=pmix (or pmi2), with and without
#   sbatch        #SBATCH --safefork=copy: the batch script and its srun tasks;
#                 salloc --safefork=log: the steps in the allocation
#   site-default  plugstack.conf default=copy: tasks protected without asking;
#                 a user's SAFEFORK_MODE kept; --safefork=off opts out;
#                 partition=: the default in the partitions named only;
#                 log= and json: the site's audit files, one JSON report per task
#   missing       library= a missing file: one "safefork:" line, the job runs
# Each prints PASS, SKIP or FAIL with the reason; the last line is
# "N passed, N failed, N skipped".  Every command runs under a timeout; the
# daemons are stopped on exit whatever happens.  Exit 1 if anything failed.
#
# Usage: run.sh BUILDDIR PLUGIN MPI   (PLUGIN, MPI: yes when configure built
# the plugin, the MPI programs; SAFEFORK_LIB: the built library)
set -u
build=$1 plugin_built=$2 mpi=$3
lib=${SAFEFORK_LIB:?SAFEFORK_LIB is not set (run through make check-slurm)}
unset LD_PRELOAD SAFEFORK_MODE SLURM_CONF
plugin=$build/tools/.libs/spank_safefork.so
task=$build/tests/slurm/task
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
finish() {
	echo "$pass passed, $fail failed, $skip skipped"
	[ $fail -eq 0 ]
	exit
}
scenarios="rejected srun-copy no-effect environment mpi sbatch site-default missing"
skip_all() {
	for s in $scenarios; do verdict SKIP "$s" "$1"; done
	finish
}

# ---------------------------------------------------------------- can it run here?
[ "$plugin_built" = yes ] || skip_all "the plugin is not built (configure: Slurm SPANK plugin: no)"
[ "$(id -u)" = 0 ] || skip_all "not root: slurmd must run as root to start tasks as their user"
for p in munged mungekey slurmctld slurmd srun sbatch sinfo scontrol; do
	command -v "$p" >/dev/null || PATH=$PATH:/usr/sbin command -v "$p" >/dev/null ||
		skip_all "$p is not installed (Debian: munge slurmctld slurmd slurm-client)"
done
PATH=$PATH:/usr/sbin

tmp=$(mktemp -d "${TMPDIR:-/tmp}/safefork-slurm.XXXXXX")
chmod 755 "$tmp" # the tasks run the build tree's programs; slurmd's spool is read by slurmstepd
pids=()
stop() {
	local p
	if [ -n "${SLURM_CONF:-}" ]; then # no job left: its slurmstepd would outlive slurmd (bounded, 10 s)
		timeout -k 2 10 scancel --quiet --user=root >/dev/null 2>&1
		for _ in $(seq 20); do
			[ -z "$(timeout -k 1 5 squeue -h 2>/dev/null)" ] && break
			sleep 0.5
		done
	fi
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do # bounded: a daemon that does not stop in 10 s is killed
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap stop EXIT
trap 'exit 1' INT TERM HUP

# Two free TCP ports for slurmctld and slurmd (not Slurm's defaults: a real cluster may run here).
used=$(ss -Htan 2>/dev/null | awk '{ sub(/.*:/, "", $4); print $4 }')
free_port() {
	local p
	for p in $(shuf -i 20000-60000 -n 50); do
		grep -qx "$p" <<<"$used" || { echo "$p"; used="$used"$'\n'"$p"; return; }
	done
	echo 0
}
ctld_port=$(free_port) slurmd_port=$(free_port)
host=$(hostname -s)

mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool" "$tmp/log" "$tmp/jobtmp" "$tmp/out"
chmod 700 "$tmp/munge"
chmod 1777 "$tmp/jobtmp" "$tmp/out"
mungekey --create --keyfile="$tmp/munge/munge.key" >"$tmp/log/mungekey.log" 2>&1 ||
	skip_all "mungekey cannot create a key: $(head -n 1 "$tmp/log/mungekey.log")"
munged --foreground --force --socket="$tmp/munge/munge.sock" --key-file="$tmp/munge/munge.key" \
	--pid-file="$tmp/munge/munged.pid" --seed-file="$tmp/munge/munged.seed" \
	--log-file="$tmp/log/munged.log" >>"$tmp/log/munged.log" 2>&1 &
pids+=($!)

conf=$tmp/slurm.conf
cat >"$conf" <<EOF
ClusterName=safefork
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/munge.sock
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
TmpFS=$tmp/jobtmp
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
PlugStackConfig=$tmp/plugstack.conf
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=$host CPUs=2 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=10 State=UP
PartitionName=other Nodes=$host MaxTime=10 State=UP
EOF
plugstack() { # plugstack [ARGS...]: load the plugin from the build tree with these arguments
	echo "required $plugin library=$lib $*" >"$tmp/plugstack.conf"
}
plugstack
export SLURM_CONF=$conf

slurmctld -D -i -f "$conf" >>"$tmp/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$conf" >>"$tmp/log/slurmd.out" 2>&1 &
pids+=($!)

# Bounded wait: the node idle within 60 s.
state=
for _ in $(seq 120); do
	state=$(timeout -k 1 5 sinfo -h -n "$host" -o %T 2>/dev/null)
	[ "$state" = idle ] && break
	sleep 0.5
done
if [ "$state" != idle ]; then
	echo "  the node did not become idle in 60 s (state: ${state:-none}); logs:"
	for f in "$tmp"/log/*; do echo "  == $(basename "$f")"; tail -n 15 "$f" | indent; done
	for s in $scenarios; do verdict FAIL "$s" "the one-node Slurm did not start (node state: ${state:-none})"; done
	finish
fi
echo "  one-node Slurm $(sinfo -V | cut -d' ' -f2) up: node $host idle (ports $ctld_port, $slurmd_port)"


# ---------------------------------------------------------------- the scenarios
export TMPDIR=$tmp/jobtmp # the jobs' temporary files (Open MPI's session directories) stay in the temp dir
out=$tmp/out
run() { # run NAME COMMAND...: in $out, bounded; stdout and stderr into $out/NAME; the command's status
	local name=$1
	shift
	(cd "$out" && timeout -k 5 90 "$@") >"$out/$name" 2>&1
}
count() { grep -c -e "$2" "$out/$1"; } # count NAME PATTERN: matching lines of a run's output
# value NAME: a run's output without srun's own notes ("job N queued and waiting for resources" when the
# previous job still holds the CPUs)
value() { grep -v '^srun: ' "$out/$1"; }
show() { # show NAME...: a run's output, indented, for the log
	local n
	for n in "$@"; do
		echo "   [$n]"
		grep -v '^note:' "$out/$n" | head -n 20 | indent
	done
}
problems=""
want() { # want CONDITION-TEXT COMMAND...: note a problem when the command fails
	local what=$1
	shift
	"$@" || problems="$problems; $what"
}
eq() { [ "$1" = "$2" ]; }
report() { # report SCENARIO PASS-TEXT RUNS...
	local name=$1 text=$2
	shift 2
	show "$@"
	if [ -n "$problems" ]; then
		verdict FAIL "$name" "${problems#; }"
	else
		verdict PASS "$name" "$text"
	fi
	problems=""
}
mapped_copy_coherent='library mapped, SAFEFORK_MODE=copy, verdict coherent$'
absent_stale='library absent, SAFEFORK_MODE=(unset), verdict STALE$'

# rejected: a bad mode stops srun and sbatch before anything is submitted.
run rej-srun srun -n 1 --safefork=bogus true
r1=$?
run rej-sbatch sbatch --safefork=bogus --wrap true
r2=$?
want "srun --safefork=bogus: status $r1" [ $r1 -ne 0 ]
want "sbatch --safefork=bogus: status $r2" [ $r2 -ne 0 ]
msg='safefork: --safefork=bogus: not a mode (auto, copy, dontfork, wipe, log or off)'
want "srun did not say why" eq "$(count rej-srun "$msg")" 1
want "sbatch did not say why" eq "$(count rej-sbatch "$msg")" 1
want "sbatch submitted a job" eq "$(count rej-sbatch 'Submitted batch job')" 0
report rejected "srun and sbatch refuse --safefork=bogus (status $r1, $r2) with: $msg" rej-srun rej-sbatch

# srun-copy: the option puts the library into both tasks, which stay coherent; the control does not.
run copy srun -n 2 --safefork=copy "$task"
r1=$?
run plain srun -n 2 "$task"
r2=$?
run bare srun -n 1 --safefork "$task"
r3=$?
want "with --safefork=copy: status $r1" [ $r1 -eq 0 ]
want "with --safefork=copy: not both tasks mapped, copy and coherent" eq "$(count copy "$mapped_copy_coherent")" 2
want "without the option: status $r2" [ $r2 -eq 0 ]
want "without the option: not both tasks absent and STALE (the control must show the corruption)" \
	eq "$(count plain "$absent_stale")" 2
want "--safefork without a mode: status $r3, or not mapped with SAFEFORK_MODE=auto" \
	eq "$r3:$(count bare 'library mapped, SAFEFORK_MODE=auto,')" 0:1
report srun-copy "srun -n 2 --safefork=copy: both tasks map the library and stay coherent through a fork during registration; without the option: absent and STALE; --safefork alone: auto" copy plain bare

# no-effect: loaded but not asked for, the plugin leaves the tasks' environment as it was.
run env-plugin srun -n 1 env
r1=$?
: >"$tmp/plugstack.conf"
run env-none srun -n 1 env
r2=$?
plugstack
want "srun env: status $r1, $r2" eq "$r1:$r2" 0:0
names() { value "$1" | cut -d= -f1 | sort; }
want "the tasks' variables differ from those under an empty plugstack.conf: $(diff <(names env-plugin) <(names env-none) | tr '\n' ' ')" \
	cmp -s <(names env-plugin) <(names env-none)
want "LD_PRELOAD or SAFEFORK_MODE set without the option" eq "$(grep -cE '^(LD_PRELOAD|SAFEFORK_MODE)=' "$out/env-plugin")" 0
report no-effect "without --safefork the tasks get the same variables as under an empty plugstack.conf, no LD_PRELOAD, no SAFEFORK_MODE" 

# environment: LD_PRELOAD the job had is kept after the library and the library is not doubled;
# the option's mode replaces one the user exported.
other=$build/examples/.libs/libreport.so
run pre-other srun -n 1 --safefork=copy --export="ALL,LD_PRELOAD=$other" printenv LD_PRELOAD
run pre-twice srun -n 1 --safefork=copy --export="ALL,LD_PRELOAD=$other:$lib" printenv LD_PRELOAD
run pre-mode srun -n 1 --safefork=copy --export=ALL,SAFEFORK_MODE=log printenv SAFEFORK_MODE
want "LD_PRELOAD=$other became $(value pre-other)" eq "$(value pre-other)" "$lib:$other"
want "LD_PRELOAD=$other:$lib became $(value pre-twice)" eq "$(value pre-twice)" "$lib:$other"
want "the user's SAFEFORK_MODE=log was not replaced by the option's copy" eq "$(value pre-mode)" copy
report environment "the library first in LD_PRELOAD, the job's own entry kept, never twice; the option's mode wins over an exported one" pre-other pre-twice pre-mode

# mpi: the MPI programs as ranks launched by srun itself (PMIx, else PMI-2), with the plugin.
mpis=$(timeout -k 1 10 srun --mpi=list 2>&1)
pm=
for m in pmix pmi2; do grep -qw "$m" <<<"$mpis" && { pm=$m; break; }; done
if [ "$mpi" != yes ]; then
	verdict SKIP mpi "the MPI programs are not built (configure: MPI example: no)"
elif [ -n "$pm" ]; then
	run mpi-copy srun -n 2 --mpi=$pm --safefork=copy "$build/tests/runtimes/mpi-fork"
	r1=$?
	run mpi-none srun -n 2 --mpi=$pm "$build/tests/runtimes/mpi-fork"
	r2=$?
	run mpi-example srun -n 2 --mpi=$pm --safefork=copy "$build/examples/mpi_runtime"
	r3=$?
	want "mpi-fork with --safefork=copy: status $r1" [ $r1 -eq 0 ]
	want "mpi-fork with --safefork=copy: not both ranks coherent with the library loaded" \
		eq "$(grep -c 'verdict coherent;.*library loaded' "$out/mpi-copy")" 2
	want "mpi-fork without the option: status $r2" [ $r2 -eq 0 ]
	want "mpi-fork without the option: not both ranks STALE (the control)" eq "$(count mpi-none 'verdict STALE;')" 2
	want "mpi_runtime: status $r3, or a rank did not say 'snapshot ok'" eq "$r3:$(count mpi-example 'snapshot ok')" 0:2
	want "the library spoke" eq "$(cat "$out/mpi-copy" "$out/mpi-example" | grep -c 'safefork:')" 0
	report mpi "srun -n 2 --mpi=$pm: tests/runtimes/mpi-fork coherent with --safefork=copy, STALE without; examples/mpi_runtime 'snapshot ok' on both ranks" mpi-copy mpi-none mpi-example
else
	# No PMI for srun: Open MPI's singleton mode, one rank (mpi-fork needs two).
	run mpi-example srun -n 1 --safefork=copy "$build/examples/mpi_runtime"
	r3=$?
	want "mpi_runtime as a singleton: status $r3, or no 'snapshot ok'" eq "$r3:$(count mpi-example 'snapshot ok')" 0:1
	report mpi "srun offers no pmix nor pmi2 ($(echo $mpis)): examples/mpi_runtime as a singleton under srun -n 1 --safefork=copy only" mpi-example
fi

# sbatch: #SBATCH --safefork=copy reaches the batch script and the steps it starts; the same script
# without that line is the control.
batch() { # batch NAME [#SBATCH LINE]: submit and wait (bounded), output in $out/NAME
	cat >"$out/$1.sh" <<EOS
#!/bin/sh
#SBATCH -n 2
#SBATCH -o $out/$1
${2:-}
echo "script: maps \$(grep -c libsafefork /proc/\$\$/maps)"
srun "$task"
srun -n 1 sh -c 'echo "step: LD_PRELOAD=\$LD_PRELOAD"'
EOS
	(cd "$out" && timeout -k 5 120 sbatch --wait "$out/$1.sh") >"$out/$1.sbatch" 2>&1
}
batch job-copy "#SBATCH --safefork=copy"
r1=$?
batch job-none
r2=$?
want "sbatch --wait with #SBATCH --safefork=copy: status $r1 ($(cat "$out/job-copy.sbatch"))" [ $r1 -eq 0 ]
want "sbatch --wait without it: status $r2 ($(cat "$out/job-none.sbatch"))" [ $r2 -eq 0 ]
want "the batch script does not map the library" eq "$(count job-copy '^script: maps [1-9]')" 1
want "its srun step: not both tasks mapped, copy and coherent" eq "$(count job-copy "$mapped_copy_coherent")" 2
want "its steps' LD_PRELOAD is not the library once" eq "$(count job-copy "^step: LD_PRELOAD=$lib\$")" 1
want "without the #SBATCH line: the script maps the library" eq "$(count job-none '^script: maps 0$')" 1
want "without the #SBATCH line: not both tasks absent and STALE" eq "$(count job-none "$absent_stale")" 2
# salloc: the option reaches the steps started in the allocation.
run alloc salloc -n 1 --safefork=log srun "$task"
r3=$?
want "salloc --safefork=log: status $r3, or its step's task not mapped with log" \
	eq "$r3:$(count alloc 'library mapped, SAFEFORK_MODE=log,')" 0:1
report sbatch "#SBATCH --safefork=copy: the batch script maps the library, its srun step's tasks are coherent, LD_PRELOAD holds it once; without the line: absent and STALE; salloc --safefork=log: its step mapped with log" job-copy job-none alloc

# site-default: default=copy in plugstack.conf protects jobs that did not ask; a SAFEFORK_MODE the
# user exported is kept; --safefork=off opts out.
plugstack default=copy
run def srun -n 2 "$task"
r1=$?
run def-user srun -n 1 --export=ALL,SAFEFORK_MODE=log "$task"
r2=$?
run def-off srun -n 1 --safefork=off "$task"
r3=$?
plugstack default=copy partition=gpu,test
run part-in srun -n 1 -p test "$task"
r4=$?
run part-out srun -n 1 -p other "$task"
r5=$?
run part-batch sbatch --wait -p test -o "$out/part-batch.out" --wrap 'grep -c libsafefork /proc/$$/maps'
r6=$?
plugstack default=log "log=$out/audit.%p.json" json
run audit srun -n 2 "$task"
r7=$?
plugstack
want "default=copy: status $r1, or not both tasks mapped, copy and coherent" \
	eq "$r1:$(count def "$mapped_copy_coherent")" 0:2
want "default=copy partition=gpu,test: status $r4, or a job in partition test not mapped, copy and coherent" \
	eq "$r4:$(count part-in "$mapped_copy_coherent")" 0:1
want "default=copy partition=gpu,test: status $r5, or a job in partition other not absent and STALE" \
	eq "$r5:$(count part-out "$absent_stale")" 0:1
want "default=copy partition=gpu,test: status $r6, or a batch script in partition test does not map the library" \
	eq "$r6:$(grep -c '^[1-9]' "$out/part-batch.out" 2>/dev/null)" 0:1
want "default=log log=$out/audit.%p.json json: status $r7, or not both tasks mapped in log mode (STALE)" \
	eq "$r7:$(count audit 'library mapped, SAFEFORK_MODE=log, verdict STALE$')" 0:2
want "default=log log=... json: not one JSON report file per task ($(ls "$out" | grep -c '^audit\.'), first lines: $(head -q -n 1 "$out"/audit.*.json 2>/dev/null | cut -c1-60 | tr '\n' ' '))" \
	eq "$(grep -l '^{.*"mode":"log"' "$out"/audit.*.json 2>/dev/null | wc -l)" 2
want "default=log log=... json: the library still wrote to the tasks' standard error" eq "$(count audit 'safefork:')" 0
want "default=copy with the user's SAFEFORK_MODE=log: status $r2, or not mapped with log" \
	eq "$r2:$(count def-user 'library mapped, SAFEFORK_MODE=log,')" 0:1
want "default=copy and --safefork=off: status $r3, or not absent with SAFEFORK_MODE=off and STALE" \
	eq "$r3:$(count def-off 'library absent, SAFEFORK_MODE=off, verdict STALE$')" 0:1
report site-default "plugstack.conf default=copy: both tasks protected without the option; the user's SAFEFORK_MODE=log kept; --safefork=off: not preloaded; with partition=gpu,test: a job (and a batch script) in test protected, one in other untouched; default=log log=DIR/audit.%p.json json: one JSON report per task in the site's place" def def-user def-off part-in part-out audit

# missing: a library that is not there, and a bad argument, never break a job.
plugstack "library=$tmp/absent/libsafefork.so.0"
run miss srun -n 2 --safefork=copy "$task"
r1=$?
plugstack default=bogus
run bad-arg srun -n 1 "$task"
r2=$?
plugstack
want "missing library: status $r1" [ $r1 -eq 0 ]
want "missing library: not both tasks absent and STALE" eq "$(count miss "$absent_stale")" 2
want "missing library: not one 'safefork:' line naming it" eq "$(grep -c 'safefork:' "$out/miss"):$(count miss "safefork: $tmp/absent/libsafefork.so.0: No such file or directory; the job runs without the library")" 1:1
want "default=bogus: status $r2, or the task is not absent" eq "$r2:$(count bad-arg "$absent_stale")" 0:1
want "default=bogus: not said" [ "$(count bad-arg 'safefork: plugstack.conf: default=bogus: not a mode')" -ge 1 ]
report missing "library= a missing file: the 2-task job runs without it (status 0) and one line says so; default=bogus is said and ignored" miss bad-arg

finish
