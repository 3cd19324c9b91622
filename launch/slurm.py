"""What a SLURM cluster offers and what it is running, read from ``scontrol`` and ``squeue``.

Parsing is kept apart from the commands (pure functions of their text output) so it is tested on captured
text as well as on the local cluster of ``launch/cluster/start.sh``.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# `scontrol` answers in milliseconds when the controller is up; a down controller makes it retry for a minute.
QUERY_TIMEOUT_S = 20.0

_GPU_GRES = re.compile(r"(?:^|,)gpu(?::[^:,()]+)?:(\d+)")


class SlurmUnavailableError(RuntimeError):
    """The SLURM commands are missing or the controller does not answer."""


@dataclass(frozen=True)
class Node:
    name: str
    partitions: tuple[str, ...]
    cpus: int
    memory_mb: int
    gpus: int
    state: str


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    state: str
    max_cpus_per_node: int | None  # None: unlimited
    max_mem_per_node_mb: int | None


@dataclass(frozen=True)
class Cluster:
    partitions: tuple[Partition, ...]
    nodes: tuple[Node, ...]

    def partition(self, name: str) -> Partition | None:
        return next((p for p in self.partitions if p.name == name), None)

    @property
    def default_partition(self) -> Partition | None:
        return next((p for p in self.partitions if p.default), None)

    def nodes_of(self, partition: str) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if partition in n.partitions)


@dataclass(frozen=True)
class LiveJob:
    """One line of ``squeue``: ``job_id`` is ``<array>_<task>`` for array tasks (``<array>_[2-5]`` when pending)."""

    job_id: str
    state: str
    stdout: str


def parse_key_values(line: str) -> dict[str, str]:
    """``Key=Value Key2=Value2`` (one ``scontrol -o`` record) -> dict; values containing spaces are cut at the space."""
    fields: dict[str, str] = {}
    for token in line.split():
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields


def count_gpus(gres: str) -> int:
    """GPUs in a node's ``Gres=`` field: ``gpu:4``, ``gpu:a100:4(S:0-1)``, ``gpu:a:2,gpu:b:2``, ``(null)``."""
    return sum(int(n) for n in _GPU_GRES.findall(gres))


def _limit(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None  # UNLIMITED or absent
    return int(value)


def parse_nodes(text: str) -> tuple[Node, ...]:
    """Parse ``scontrol show node -o``."""
    nodes = []
    for line in text.splitlines():
        f = parse_key_values(line)
        if "NodeName" not in f:
            continue
        partitions = f.get("Partitions", "")
        nodes.append(
            Node(
                name=f["NodeName"],
                partitions=tuple(p for p in partitions.split(",") if p and p != "(null)"),
                cpus=int(f.get("CPUEfctv", f.get("CPUTot", "0"))),
                memory_mb=int(f.get("RealMemory", "0")),
                gpus=count_gpus(f.get("Gres", "")),
                state=f.get("State", "UNKNOWN"),
            )
        )
    return tuple(nodes)


def parse_partitions(text: str) -> tuple[Partition, ...]:
    """Parse ``scontrol show partition -o``."""
    partitions = []
    for line in text.splitlines():
        f = parse_key_values(line)
        if "PartitionName" not in f:
            continue
        partitions.append(
            Partition(
                name=f["PartitionName"],
                default=f.get("Default") == "YES",
                state=f.get("State", "UNKNOWN"),
                max_cpus_per_node=_limit(f.get("MaxCPUsPerNode")),
                max_mem_per_node_mb=_limit(f.get("MaxMemPerNode")),
            )
        )
    return tuple(partitions)


def parse_squeue(text: str) -> tuple[LiveJob, ...]:
    """Parse ``squeue -h -O JobArrayID:|,State:|,StdOut:`` (see :func:`live_jobs`)."""
    jobs = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= 3 and parts[0].strip():
            jobs.append(LiveJob(job_id=parts[0].strip(), state=parts[1].strip(), stdout="|".join(parts[2:]).strip()))
    return tuple(jobs)


def _run(args: list[str]) -> str:
    if shutil.which(args[0]) is None:
        raise SlurmUnavailableError(f"'{args[0]}' not found; install SLURM's client tools or run where they exist")
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as e:
        raise SlurmUnavailableError(
            f"'{' '.join(args)}' did not answer in {QUERY_TIMEOUT_S:.0f} s; is SLURM's slurmctld up (SLURM_CONF)?"
        ) from e
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no error message"])[0]
        raise SlurmUnavailableError(f"'{' '.join(args)}' failed: {first}; check SLURM_CONF and that slurmctld is up")
    return done.stdout


def query_cluster() -> Cluster:
    """Partitions and nodes of the cluster that ``SLURM_CONF`` (or the system config) points at."""
    return Cluster(
        partitions=parse_partitions(_run(["scontrol", "show", "partition", "-o"])),
        nodes=parse_nodes(_run(["scontrol", "show", "node", "-o"])),
    )


def live_jobs(under: Path | None = None) -> tuple[LiveJob, ...]:
    """Jobs SLURM still knows as queued or running; with ``under``, only those whose log goes below that folder.

    submitit writes every job's log into its ``submitit_folder`` (``<sweep dir>/.submitit/%j`` in the launcher
    presets), so ``under=<sweep dir>`` selects the jobs of one sweep.
    """
    jobs = parse_squeue(_run(["squeue", "-h", "-O", "JobArrayID:|,State:|,StdOut:"]))
    if under is None:
        return jobs
    # submitit writes absolute paths as given (not resolved): a sweep under a symlinked /home or /scratch matches
    # by either spelling.
    roots = tuple({str(under.absolute()) + "/", str(under.resolve()) + "/"})
    return tuple(j for j in jobs if j.stdout.startswith(roots))
