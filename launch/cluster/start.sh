#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (no systemd, no cgroups, no accounting database).
#
# Everything lives under one state folder, GOL_SLURM_DIR (default /tmp/gol-slurm): slurm.conf, spool,
# state, logs and pid files. munged is the system one (/run/munge), started here if it is not answering.
# Settings follow what works in a container: linuxproc process tracking, no task plugin, cons_tres with
# CR_Core_Memory and a default memory per CPU (otherwise a job without --mem takes the whole node and array
# tasks run one at a time), short credential expiry and a 1 s backfill so that requeued jobs restart within
# seconds instead of two minutes.
#
# Environment (all optional):
#   GOL_SLURM_DIR        state folder                            [/tmp/gol-slurm]
#   GOL_SLURM_PORT       slurmctld port; slurmd uses PORT + 1     [6817]
#   GOL_SLURM_PARTITION  name of the (default) partition          [debug]
#   GOL_SLURM_GPUS       fake GPUs (GRES backed by character devices, for request checks only) [2]
#
# On success the last two lines are the exports to paste (or `eval "$(launch/cluster/start.sh | tail -2)"`):
#   export SLURM_CONF=<dir>/slurm.conf
#   export PATH=<repo>/launch/cluster/bin:$PATH      (sacct stand-in; there is no accounting database)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${GOL_SLURM_DIR:-/tmp/gol-slurm}"
port="${GOL_SLURM_PORT:-6817}"
partition="${GOL_SLURM_PARTITION:-debug}"
gpus="${GOL_SLURM_GPUS:-2}"

die() { echo "start.sh: $*" >&2; exit 1; }

for tool in slurmctld slurmd sinfo munged munge unmunge; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found; run launch/cluster/install.sh first (as root)"
done
[ "$(id -u)" -eq 0 ] || die "must run as root (slurmd starts jobs as their user)"

mkdir -p "$state"/{ctld,spool,log,dev}
state="$(cd "$state" && pwd)"
conf="$state/slurm.conf"

if [ -f "$state/slurmctld.pid" ] && kill -0 "$(cat "$state/slurmctld.pid")" 2>/dev/null; then
  die "a cluster is already running from $state; stop it with launch/cluster/stop.sh"
fi

# munge: Debian's package creates the key but not /run/munge (systemd's RuntimeDirectory would).
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- munged
  timeout 10 bash -c 'until munge -n 2>/dev/null | unmunge >/dev/null 2>&1; do sleep 0.1; done' \
    || die "munged did not answer within 10 s; see /var/log/munge/munged.log"
  touch "$state/munged.started"
fi

# Memory: stay below what slurmd measures, or the node is drained as "low RealMemory".
measured_mb="$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)"
[ -n "$measured_mb" ] || die "could not read RealMemory from 'slurmd -C'"
real_mb=$((measured_mb * 9 / 10))
cpus="$(nproc)"

gres_line=""
node_gres=""
if [ "$gpus" -gt 0 ]; then
  # GRES files must be character devices; these are copies of /dev/null, no real GPU is implied.
  for i in $(seq 0 $((gpus - 1))); do
    [ -c "$state/dev/gpu$i" ] || mknod "$state/dev/gpu$i" c 1 3
  done
  printf 'NodeName=localhost Name=gpu File=%s\n' "$state/dev/gpu[0-$((gpus - 1))]" > "$state/gres.conf"
  gres_line="GresTypes=gpu"
  node_gres="Gres=gpu:$gpus"
else
  rm -f "$state/gres.conf"
fi

cat > "$conf" <<CONF
# Written by launch/cluster/start.sh; regenerated at every start.
ClusterName=gol
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
$gres_line
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mb $node_gres State=UNKNOWN
PartitionName=$partition Nodes=localhost Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=1000
CONF

export SLURM_CONF="$conf"
slurmctld -f "$conf"
slurmd -f "$conf" -N localhost

if ! timeout 30 bash -c 'until sinfo -h -N -o %t 2>/dev/null | grep -qx idle; do sleep 0.2; done'; then
  sinfo -N >&2 || true
  die "node not idle within 30 s; see $state/log/slurmctld.log and $state/log/slurmd.log"
fi

echo "start.sh: cluster up: partition $partition, $cpus CPUs, ${real_mb} MB, $gpus fake GPUs, state in $state"
echo "export SLURM_CONF=$conf"
echo "export PATH=$here/bin:\$PATH"
