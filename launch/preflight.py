"""Refuse a SLURM request the cluster can never satisfy, before anything is submitted.

SLURM itself accepts many impossible requests and leaves them pending forever (or rejects them one job at a
time, after the launcher has started). Here the launcher config is checked against ``scontrol show partition``
and ``scontrol show node``: the partition must exist, and at least ``nodes`` nodes of it must each offer the
GPUs, CPUs (tasks x CPUs per task) and memory asked for. Problems are one-line :class:`PreflightError`\\ s that
name the setting to change.

    python -m launch.preflight --partition gpu --tasks-per-node 4 --gpus-per-node 4 --mem-gb 128
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from launch.slurm import Cluster, Node, Partition, SlurmUnavailableError, count_gpus, query_cluster

log = logging.getLogger(__name__)


class PreflightError(ValueError):
    """The request cannot be satisfied by any node of the cluster."""


@dataclass(frozen=True)
class ResourceRequest:
    """Per-job resources, with the meaning of the submitit launcher's keys (``mem_gb`` is per node)."""

    partition: str | None = None  # None: the cluster's default partition
    nodes: int = 1
    tasks_per_node: int = 1
    cpus_per_task: int | None = None
    gpus_per_node: int | None = None
    mem_gb: int | None = None

    @property
    def cpus_per_node(self) -> int:
        return self.tasks_per_node * (self.cpus_per_task or 1)

    @property
    def gpus(self) -> int:
        return self.gpus_per_node or 0

    @classmethod
    def from_launcher(cls, launcher: Mapping[str, Any]) -> ResourceRequest:
        """From ``cfg.hydra.launcher`` of ``submitit_slurm`` (or a preset extending it).

        GPUs may be asked as ``gpus_per_node``, ``gpus_per_task`` (times ``tasks_per_node``) or ``gres: gpu:N``.
        """
        tasks = int(launcher.get("tasks_per_node") or 1)
        gpus = launcher.get("gpus_per_node")
        if gpus is None and launcher.get("gpus_per_task") is not None:
            gpus = int(launcher["gpus_per_task"]) * tasks
        if gpus is None and launcher.get("gres"):
            gpus = count_gpus(str(launcher["gres"]))
        return cls(
            partition=launcher.get("partition"),
            nodes=int(launcher.get("nodes") or 1),
            tasks_per_node=tasks,
            cpus_per_task=launcher.get("cpus_per_task"),
            gpus_per_node=None if gpus is None else int(gpus),
            mem_gb=launcher.get("mem_gb"),
        )


def _resolve_partition(name: str | None, cluster: Cluster) -> Partition:
    names = ", ".join(p.name for p in cluster.partitions) or "(none)"
    if name is None:
        default = cluster.default_partition
        if default is None:
            raise PreflightError(
                f"no SLURM partition given and the cluster has no default one; "
                f"set hydra.launcher.partition (or GOL_SLURM_PARTITION) to one of: {names}"
            )
        return default
    partition = cluster.partition(name)
    if partition is None:
        raise PreflightError(
            f"SLURM partition '{name}' does not exist; existing partitions: {names}; "
            f"set hydra.launcher.partition (or GOL_SLURM_PARTITION) to one of them"
        )
    return partition


def _node_capacity(node: Node, partition: Partition) -> tuple[int, int, int]:
    """(GPUs, CPUs, memory MB) a job of ``partition`` may use on ``node``."""
    cpus = node.cpus if partition.max_cpus_per_node is None else min(node.cpus, partition.max_cpus_per_node)
    mem = (
        node.memory_mb if partition.max_mem_per_node_mb is None else min(node.memory_mb, partition.max_mem_per_node_mb)
    )
    return node.gpus, cpus, mem


def check_request(request: ResourceRequest, cluster: Cluster) -> tuple[Node, ...]:
    """Return the nodes that can each run one node's share of ``request``; raise :class:`PreflightError` if too few."""
    partition = _resolve_partition(request.partition, cluster)
    p = partition.name
    nodes = cluster.nodes_of(p)
    if not nodes:
        raise PreflightError(f"SLURM partition '{p}' has no nodes; choose another with hydra.launcher.partition")
    capacities = [_node_capacity(n, partition) for n in nodes]
    mem_mb = None if request.mem_gb is None else request.mem_gb * 1024  # submitit passes --mem=<mem_gb>GB
    max_gpus = max(c[0] for c in capacities)
    max_cpus = max(c[1] for c in capacities)
    max_mem = max(c[2] for c in capacities)
    if request.gpus > max_gpus:
        raise PreflightError(
            f"{request.gpus} GPUs per node requested (hydra.launcher.gpus_per_node) but the nodes of partition "
            f"'{p}' have at most {max_gpus}; lower gpus_per_node and tasks_per_node or pick a partition with more GPUs"
        )
    if request.cpus_per_node > max_cpus:
        raise PreflightError(
            f"{request.tasks_per_node} tasks x {request.cpus_per_task or 1} CPUs = {request.cpus_per_node} CPUs "
            f"per node requested but the nodes of partition '{p}' have at most {max_cpus}; "
            f"lower hydra.launcher.cpus_per_task or tasks_per_node"
        )
    if mem_mb is not None and mem_mb > max_mem:
        raise PreflightError(
            f"hydra.launcher.mem_gb={request.mem_gb} ({mem_mb} MB per node) but the nodes of partition '{p}' have at "
            f"most {max_mem} MB; lower hydra.launcher.mem_gb to {max_mem // 1024} or less"
        )
    fitting = tuple(
        node
        for node, (gpus, cpus, mem) in zip(nodes, capacities, strict=True)
        if request.gpus <= gpus and request.cpus_per_node <= cpus and (mem_mb is None or mem_mb <= mem)
    )
    if len(fitting) < request.nodes:
        raise PreflightError(
            f"{request.nodes} nodes of partition '{p}' with {request.gpus} GPUs, {request.cpus_per_node} CPUs and "
            f"{request.mem_gb or 'default'} GB each requested but only {len(fitting)} have them together; "
            f"lower hydra.launcher.nodes or the per-node request"
        )
    if partition.state != "UP":
        log.warning("SLURM partition '%s' is %s: jobs will wait until it is UP", p, partition.state)
    return fitting


def is_slurm_launcher(launcher: Mapping[str, Any]) -> bool:
    """Whether ``cfg.hydra.launcher`` submits to SLURM (the plugin's launcher or any ``*SlurmLauncher``)."""
    return str(launcher.get("_target_", "")).endswith("SlurmLauncher")


def check_launcher(launcher: Mapping[str, Any], cluster: Cluster | None = None) -> str:
    """Check ``cfg.hydra.launcher`` against the live cluster (or ``cluster``); return a one-line summary.

    For dry runs: raises :class:`PreflightError` for an unsatisfiable request and
    :class:`launch.slurm.SlurmUnavailableError` when SLURM cannot be queried. Non-SLURM launchers pass.
    """
    if not is_slurm_launcher(launcher):
        return f"launcher {launcher.get('_target_')} does not submit to SLURM; nothing to check"
    request = ResourceRequest.from_launcher(launcher)
    cluster = query_cluster() if cluster is None else cluster
    fitting = check_request(request, cluster)
    partition = _resolve_partition(request.partition, cluster).name
    return (
        f"SLURM request fits: partition {partition}, {request.nodes} node(s) x ({request.tasks_per_node} tasks, "
        f"{request.gpus} GPUs, {request.cpus_per_node} CPUs, {request.mem_gb or 'default'} GB); "
        f"{len(fitting)} node(s) can take it: {', '.join(n.name for n in fitting)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launch.preflight", description=__doc__.split("\n\n")[0])
    parser.add_argument("--partition", default=None, help="default: the cluster's default partition")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--tasks-per-node", type=int, default=1)
    parser.add_argument("--cpus-per-task", type=int, default=None)
    parser.add_argument("--gpus-per-node", type=int, default=None)
    parser.add_argument("--mem-gb", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    launcher = {"_target_": "SlurmLauncher", **vars(args)}
    try:
        log.info(check_launcher(launcher))
    except (PreflightError, SlurmUnavailableError) as e:
        log.error("preflight: %s", e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
