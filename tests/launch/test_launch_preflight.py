"""Preflight checks of SLURM requests: on captured scontrol output and on the live local cluster."""

from __future__ import annotations

import pytest

from launch.cost import CellCost, gpu_hours_table
from launch.preflight import PreflightError, ResourceRequest, check_launcher, check_request
from launch.slurm import Cluster, count_gpus, parse_nodes, parse_partitions, query_cluster

# Shortened `scontrol show partition -o` / `scontrol show node -o` of a two-partition GPU cluster.
PARTITIONS = """\
PartitionName=cpu AllowGroups=ALL Default=YES QoS=N/A MaxNodes=UNLIMITED MaxTime=2-00:00:00 Nodes=c[01-02] State=UP TotalCPUs=128 TotalNodes=2 MaxCPUsPerNode=UNLIMITED DefMemPerCPU=2000 MaxMemPerNode=UNLIMITED
PartitionName=gpu AllowGroups=ALL Default=NO QoS=N/A MaxNodes=UNLIMITED MaxTime=1-00:00:00 Nodes=g[01-03] State=UP TotalCPUs=144 TotalNodes=3 MaxCPUsPerNode=40 MaxMemPerNode=400000
"""
NODES = """\
NodeName=c01 Arch=x86_64 CoresPerSocket=32 CPUAlloc=0 CPUEfctv=64 CPUTot=64 Gres=(null) RealMemory=257000 Partitions=cpu State=IDLE
NodeName=c02 Arch=x86_64 CoresPerSocket=32 CPUAlloc=0 CPUEfctv=64 CPUTot=64 Gres=(null) RealMemory=257000 Partitions=cpu State=MIXED
NodeName=g01 Arch=x86_64 CoresPerSocket=24 CPUAlloc=8 CPUEfctv=48 CPUTot=48 Gres=gpu:a100:4(S:0-1) RealMemory=500000 Partitions=gpu State=MIXED
NodeName=g02 Arch=x86_64 CoresPerSocket=24 CPUAlloc=0 CPUEfctv=48 CPUTot=48 Gres=gpu:a100:4(S:0-1) RealMemory=500000 Partitions=gpu State=IDLE
NodeName=g03 Arch=x86_64 CoresPerSocket=24 CPUAlloc=0 CPUEfctv=48 CPUTot=48 Gres=gpu:v100:2,gpu:t4:1 RealMemory=190000 Partitions=gpu,cpu State=IDLE
"""
CLUSTER = Cluster(partitions=parse_partitions(PARTITIONS), nodes=parse_nodes(NODES))
PAPER = ResourceRequest(partition="gpu", tasks_per_node=4, gpus_per_node=4, cpus_per_task=8, mem_gb=128)


def test_parse_scontrol_text() -> None:
    assert [p.name for p in CLUSTER.partitions] == ["cpu", "gpu"]
    assert CLUSTER.default_partition is not None and CLUSTER.default_partition.name == "cpu"
    gpu = CLUSTER.partition("gpu")
    assert gpu is not None and (gpu.max_cpus_per_node, gpu.max_mem_per_node_mb) == (40, 400000)
    assert [(n.name, n.gpus, n.cpus, n.memory_mb) for n in CLUSTER.nodes_of("gpu")] == [
        ("g01", 4, 48, 500000), ("g02", 4, 48, 500000), ("g03", 3, 48, 190000),
    ]  # fmt: skip
    assert [n.name for n in CLUSTER.nodes_of("cpu")] == ["c01", "c02", "g03"]
    assert [count_gpus(g) for g in ("(null)", "gpu:8", "gpu:a100:4(S:0-1)", "gpu:v100:2,gpu:t4:1", "mps:100")] == [
        0,
        8,
        4,
        3,
        0,
    ]


def test_paper_request_fits_two_nodes() -> None:
    assert [n.name for n in check_request(PAPER, CLUSTER)] == ["g01", "g02"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"partition": "a100"},
            "SLURM partition 'a100' does not exist; existing partitions: cpu, gpu; set hydra.launcher.partition",
        ),
        (
            {"gpus_per_node": 8},
            "8 GPUs per node requested (hydra.launcher.gpus_per_node) but the nodes of partition 'gpu' have at most 4;",
        ),
        ({"partition": None}, "nodes of partition 'cpu' have at most 3;"),  # the default partition
        (
            {"mem_gb": 600},
            "hydra.launcher.mem_gb=600 (614400 MB per node) but the nodes of partition 'gpu' have at most 400000 MB; "
            "lower hydra.launcher.mem_gb to 390 or less",
        ),
        (
            {"cpus_per_task": 12},
            "4 tasks x 12 CPUs = 48 CPUs per node requested but the nodes of partition 'gpu' have at most 40;",
        ),
        (
            {"nodes": 3},
            "3 nodes of partition 'gpu' with 4 GPUs, 32 CPUs and 128 GB each requested but only 2 have them together;",
        ),
    ],
)
def test_unsatisfiable_requests_name_the_problem(change: dict[str, object], message: str) -> None:
    request = ResourceRequest(**{**PAPER.__dict__, **change})
    with pytest.raises(PreflightError) as error:
        check_request(request, CLUSTER)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_request_from_launcher_config() -> None:
    launcher = {
        "_target_": "x.SlurmLauncher",
        "partition": "gpu",
        "tasks_per_node": 4,
        "gpus_per_task": 1,
        "mem_gb": 64,
    }
    assert ResourceRequest.from_launcher(launcher) == ResourceRequest(
        partition="gpu", tasks_per_node=4, gpus_per_node=4, mem_gb=64
    )
    assert ResourceRequest.from_launcher({"gres": "gpu:2"}).gpus_per_node == 2
    assert "nothing to check" in check_launcher({"_target_": "x.LocalLauncher"}, CLUSTER)
    assert check_launcher({"_target_": "x.SlurmLauncher", **PAPER.__dict__}, CLUSTER).startswith(
        "SLURM request fits: partition gpu, 1 node(s) x (4 tasks, 4 GPUs, 32 CPUs, 128 GB); "
        "2 node(s) can take it: g01, g02"
    )


def test_gpu_hours_table() -> None:
    cells = [CellCost("loss=ce", 90_000, 0.8, 4), CellCost("loss=eql", 90_000, 1.0, 4)]
    assert [c.gpu_hours for c in cells] == [80.0, 100.0]
    table = gpu_hours_table(cells).splitlines()
    assert table[0].split() == ["cell", "iterations", "s/iter", "GPUs", "wall", "h", "GPU", "h"]
    assert table[2].split() == ["loss=ce", "90,000", "0.8", "4", "20.0", "80.0"]
    assert table[-1].split() == ["total", "(2", "cells)", "180,000", "45.0", "180.0"]
    assert CellCost("cpu job", 3_600, 1.0, 0).gpu_hours == 0.0
    with pytest.raises(ValueError, match="gpus \\(-1\\) must be >= 0"):
        CellCost("bad", 10, 1.0, -1)


@pytest.mark.slurm
def test_live_cluster_is_read(slurm_cluster) -> None:
    cluster = query_cluster()
    assert [(p.name, p.default) for p in cluster.partitions] == [(slurm_cluster.partition, True)]
    (node,) = cluster.nodes
    assert node.name == "localhost" and node.gpus == slurm_cluster.gpus and node.cpus >= 1 and node.memory_mb > 0


@pytest.mark.slurm
def test_live_cluster_checks_the_presets(slurm_cluster, launcher_preset) -> None:
    assert check_launcher(launcher_preset("local_cluster")).startswith("SLURM request fits: partition debug")
    with pytest.raises(PreflightError, match=f"4 GPUs per node requested .* at most {slurm_cluster.gpus};"):
        check_launcher(launcher_preset("slurm", "hydra.launcher.partition=null"))
    with pytest.raises(PreflightError, match="SLURM partition 'gpu' does not exist; existing partitions: debug;"):
        check_launcher(launcher_preset("slurm", "hydra.launcher.partition=gpu"))


@pytest.mark.slurm
def test_live_cluster_refuses_unsatisfiable_requests(slurm_cluster) -> None:
    launcher = {"_target_": "hydra_plugins.gol_launcher.launcher.PreemptibleSlurmLauncher"}
    assert "partition debug" in check_launcher({**launcher, "gpus_per_node": slurm_cluster.gpus, "mem_gb": 1})
    with pytest.raises(PreflightError, match="SLURM partition 'gpu' does not exist; existing partitions: debug;"):
        check_launcher({**launcher, "partition": "gpu"})
    with pytest.raises(PreflightError, match=f"4 GPUs per node requested .* at most {slurm_cluster.gpus};"):
        check_launcher({**launcher, "gpus_per_node": 4})
    with pytest.raises(PreflightError, match=r"hydra\.launcher\.mem_gb=100000 "):
        check_launcher({**launcher, "mem_gb": 100_000})
