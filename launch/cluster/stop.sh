#!/usr/bin/env bash
# Stop the cluster started by start.sh from GOL_SLURM_DIR (default /tmp/gol-slurm).
# The daemons delete their pid files as soon as shutdown starts, so the PIDs are read first and then waited on.
# munged is stopped only if start.sh started it and no other slurmctld still uses it.
set -uo pipefail

state="${GOL_SLURM_DIR:-/tmp/gol-slurm}"
[ -d "$state" ] || { echo "stop.sh: no cluster state in $state"; exit 0; }

# Jobs first, while the daemons can still end them: a job step whose slurmd is gone leaves its slurmstepd
# waiting forever.
export SLURM_CONF="$state/slurm.conf"
if [ -f "$state/slurmctld.pid" ] && kill -0 "$(cat "$state/slurmctld.pid")" 2>/dev/null; then
  jobs="$(timeout 10 squeue -h -o %A 2>/dev/null | tr '\n' ' ')"
  if [ -n "${jobs// /}" ]; then
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs 2>/dev/null || true
  fi
  timeout 15 bash -c 'while [ -n "$(squeue -h 2>/dev/null)" ]; do sleep 0.2; done' \
    || echo "stop.sh: jobs still listed after 15 s; stopping the daemons anyway" >&2
fi

pids=()
for name in slurmd slurmctld; do
  f="$state/$name.pid"
  if [ -f "$f" ]; then
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then pids+=("$pid"); fi
  fi
done

for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do
  if ! timeout 20 bash -c "while kill -0 $pid 2>/dev/null; do sleep 0.1; done"; then
    echo "stop.sh: pid $pid still alive after 20 s; sending KILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
done

# Step daemons of this cluster that outlived slurmd (they hold files under the state folder open).
for pid in $(pgrep -f '^slurmstepd:' || true); do
  if ls -l "/proc/$pid/fd" 2>/dev/null | grep -q -- "-> $state/"; then
    echo "stop.sh: ending leftover slurmstepd $pid" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
done

if [ -f "$state/munged.started" ]; then
  rm -f "$state/munged.started"
  if pgrep -x slurmctld >/dev/null 2>&1; then
    echo "stop.sh: leaving munged running (another slurmctld uses it)"
  elif [ -f /run/munge/munged.pid ]; then
    mpid="$(cat /run/munge/munged.pid)"
    kill -TERM "$mpid" 2>/dev/null || true
    timeout 10 bash -c "while kill -0 $mpid 2>/dev/null; do sleep 0.1; done" || true
  fi
fi
echo "stop.sh: stopped ${#pids[@]} daemon(s) from $state"
