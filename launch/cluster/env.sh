# Source this file to use the local cluster from a shell:  source launch/cluster/env.sh
# Sets SLURM_CONF for the state folder GOL_SLURM_DIR (default /tmp/gol-slurm) and puts the sacct stand-in on PATH.
_gol_cluster_bin="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bin"
export SLURM_CONF="${GOL_SLURM_DIR:-/tmp/gol-slurm}/slurm.conf"
case ":$PATH:" in *":$_gol_cluster_bin:"*) ;; *) export PATH="$_gol_cluster_bin:$PATH" ;; esac
unset _gol_cluster_bin
