#!/usr/bin/env bash
# A private single-node SLURM for the tests, from Debian's packages (munge, slurmctld, slurmd,
# slurm-client): no systemd, nothing under /etc. Everything lives in one folder; clients use it
# through SLURM_CONF=<folder>/slurm.conf, and inside jobs (where snakemake's jobstep drops SLURM_*
# variables before its srun) through /run/slurm/conf/, the place Slurm's clients look after
# /etc/slurm/slurm.conf. Run as root (slurmd starts jobs as their users).
#
#   single_node.sh start <folder> <ctld_port> <slurmd_port>   start munged, slurmctld, slurmd; wait for the node
#   single_node.sh stop <folder>                              stop the daemons this folder's pid files name
#
# The node advertises fake GPUs (GRES "gpu" on /dev/null, /dev/zero, ...) so that jobs asking for
# `--gpus`/`--ntasks-per-gpu` are accepted and the GPU rules' submission path is exercised.
#   SLURM_TEST_CPUS (default: this machine's), SLURM_TEST_GPUS (default 1): what the node
#   advertises (SlurmdParameters=config_overrides: slurmd believes the config, not the hardware).
# No accounting (no slurmdbd): the workflow's status checks must use squeue, which shows finished
# jobs for MinJobAge seconds.
set -euo pipefail

action=${1:?start or stop}
dir=$(realpath -m "${2:?state folder}")
pids=("$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid")

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pid() {
    alive "$1" || return 0
    local pid; pid=$(cat "$1"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}
wait_for() {  # wait_for <seconds> <command...>
    local n=$(( $1 * 5 )); shift
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "single_node.sh: timed out waiting for: $*" >&2; return 1
}

run_conf=/run/slurm/conf
unlink_ours() {  # remove /run/slurm/conf/<name> where it points into this folder
    local link
    for link in "$run_conf/slurm.conf" "$run_conf/gres.conf"; do
        [ -L "$link" ] && [ "$(readlink "$link")" = "$dir/$(basename "$link")" ] && rm -f "$link"
    done
    return 0
}

if [ "$action" = stop ]; then
    for p in "${pids[@]}"; do stop_pid "$p"; done
    unlink_ours
    exit 0
fi
[ "$action" = start ] || { echo "usage: $0 start|stop <folder> ..." >&2; exit 2; }
ctld_port=${3:?slurmctld port}
slurmd_port=${4:?slurmd port}
[ "$(id -u)" -eq 0 ] || { echo "single_node.sh: needs root (slurmd runs jobs as their users)" >&2; exit 1; }
for cmd in munged mungekey slurmctld slurmd sbatch squeue; do
    command -v "$cmd" >/dev/null || { echo "single_node.sh: $cmd not found (apt-get install munge slurmctld slurmd slurm-client)" >&2; exit 1; }
done

if [ -e /etc/slurm/slurm.conf ]; then
    echo "single_node.sh: this machine has a SLURM configured (/etc/slurm/slurm.conf); jobs would use it, not the test's" >&2
    exit 3
fi
if [ -e "$run_conf/slurm.conf" ] && [ "$(readlink "$run_conf/slurm.conf")" != "$dir/slurm.conf" ]; then
    echo "single_node.sh: $run_conf/slurm.conf belongs to another SLURM (stop it first)" >&2
    exit 3
fi
install -d -m 0700 "$dir" "$dir/ctld" "$dir/spool" "$dir/munge"
export SLURM_CONF="$dir/slurm.conf"

# munge: its own key, socket and pid file
[ -s "$dir/munge/munge.key" ] || mungekey --create --keyfile="$dir/munge/munge.key" 2>/dev/null \
    || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$dir/munge/munge.key"
socket="$dir/munge/munge.socket"
alive "$dir/munged.pid" || munged --force --key-file="$dir/munge/munge.key" --socket="$socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munged.seed"
wait_for 30 bash -c "munge -S '$socket' -n | unmunge -S '$socket'"

host=$(hostname -s)
cpus=${SLURM_TEST_CPUS:-$(nproc)}
gpus=${SLURM_TEST_GPUS:-1}
memory=$(slurmd -C | head -1 | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
cat >"$dir/slurm.conf" <<EOF
ClusterName=rnce-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:$gpus State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
devices=(/dev/null /dev/zero /dev/full /dev/urandom /dev/random /dev/tty /dev/ptmx /dev/console)
[ "$gpus" -le ${#devices[@]} ] || { echo "single_node.sh: at most ${#devices[@]} fake GPUs" >&2; exit 2; }
files=$(IFS=,; echo "${devices[*]:0:$gpus}")
echo "NodeName=$host Name=gpu File=$files" >"$dir/gres.conf"
install -d "$run_conf"
ln -sfn "$dir/slurm.conf" "$run_conf/slurm.conf"
ln -sfn "$dir/gres.conf" "$run_conf/gres.conf"

alive "$dir/slurmctld.pid" || slurmctld -f "$SLURM_CONF"
wait_for 60 scontrol ping
alive "$dir/slurmd.pid" || slurmd -f "$SLURM_CONF"
if ! wait_for 60 bash -c "sinfo -h -o %T | grep -qE '^(idle|mixed|allocated)'"; then
    scontrol update nodename="$host" state=resume || true
    wait_for 30 bash -c "sinfo -h -o %T | grep -qE '^(idle|mixed|allocated)'" || {
        echo "single_node.sh: the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
        sinfo -N -l >&2 || true
        exit 1
    }
fi
sinfo
