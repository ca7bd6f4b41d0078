#!/usr/bin/env bash
# A one-node Slurm on this machine, for the sweep's Slurm test (tests/python/test_slurm_sweep.py)
# and for trying `scripts/sweep.py --slurm` without a cluster. Needs root and Debian's slurm-wlm and
# munge (22.05 on bookworm; scripts/setup.sh installs them), and root or password-less sudo.
#
#   scripts/slurm_local.sh start DIR   # configuration, state, logs under DIR; waits for an idle node
#   export SLURM_CONF=DIR/slurm.conf   # then sbatch, squeue, scontrol, scancel use it
#   scripts/slurm_local.sh stop DIR    # stops slurmd, slurmctld and munged (only those it started)
#
# What 22.05 needs here, learned the hard way: ClusterName; SlurmctldHost=localhost;
# select/cons_tres (select/linear runs one job at a time); proctrack/linuxproc and task/none (no
# cgroup hierarchy to manage) with CgroupPlugin=cgroup/v1 in cgroup.conf (slurmd loads it even so);
# state and spool folders that exist on a file system that is not noexec; a munge key owned by
# munge, mode 0400; AuthInfo=cred_expire lowered, or a requeued task waits 120 s to start again.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"  # where Debian puts munged, slurmctld and slurmd

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
if [[ $(id -u) -ne 0 ]]; then  # the daemons run as root; jobs run as the user who submits them
  exec sudo -n "$0" "$@"
fi
action=$1
dir=$(realpath -m "$2")

stop() {
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid"; do
    [[ -s $pidfile ]] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
  if [[ -L $dir/munge ]]; then
    rm -rf "$(readlink "$dir/munge")"
    rm -f "$dir/munge"
  fi
}

start() {
  for tool in munged slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null || { echo "slurm_local.sh: $tool not found (apt-get install slurm-wlm munge)" >&2; exit 1; }
  done
  mkdir -p "$dir/state" "$dir/spool"
  # munged runs as munge, and every client must reach its socket: its own folder in /tmp, since
  # DIR may sit below a folder only root can enter.
  local munge_dir
  munge_dir=$(mktemp -d /tmp/vimvq-munge.XXXXXX)
  chown munge:munge "$munge_dir"
  chmod 0755 "$munge_dir"
  ln -sfn "$munge_dir" "$dir/munge"
  if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  local socket="$munge_dir/munge.socket"
  runuser -u munge -- munged --socket="$socket" --pid-file="$munge_dir/munged.pid" \
    --log-file="$munge_dir/munged.log" --seed-file="$munge_dir/munged.seed"
  cp "$munge_dir/munged.pid" "$dir/munged.pid"

  local cpus memory
  cpus=$(nproc)
  memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
  cat > "$dir/slurm.conf" <<EOF
ClusterName=vimvq-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket,cred_expire=10
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
JobRequeue=1
ReturnToService=2
MinJobAge=600
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  printf 'CgroupPlugin=cgroup/v1\n' > "$dir/cgroup.conf"
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -i
  slurmd -N localhost
  for _ in $(seq 120); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then
      echo "slurm_local.sh: one node idle ($cpus CPUs); export SLURM_CONF=$dir/slurm.conf"
      return 0
    fi
    sleep 0.5
  done
  echo "slurm_local.sh: the node did not become idle in 60 s; logs: $dir/slurmctld.log $dir/slurmd.log" >&2
  sinfo -N >&2 || true
  stop
  exit 1
}

case $action in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
