#!/usr/bin/env bash
# Install the Debian packages of a single-node SLURM cluster (slurmctld, slurmd, client tools, munge).
# Idempotent: does nothing when every tool is already on PATH. Needs apt-get, and root (or sudo, used when present).
set -euo pipefail

missing=()
for tool in slurmctld slurmd sinfo munged; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install.sh: SLURM and munge already installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo "$0" "$@"
  fi
  echo "install.sh: missing ${missing[*]}; run as root (apt-get needs it)" >&2
  exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install.sh: missing ${missing[*]} and no apt-get on this machine; install SLURM by hand" >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive
timeout 300 apt-get update -qq
timeout 600 apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge
echo "install.sh: installed slurmctld slurmd slurm-client munge"
