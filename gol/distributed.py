"""Data-parallel training over the processes a launcher gives a job (torchrun, or the tasks of a SLURM job).

One process per GPU (or per CPU worker with the gloo backend). Rank 0 alone writes the run record, W&B and
checkpoints; every rank reads the same checkpoint on resume.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _slurm_world() -> bool:
    """Export torch.distributed's env:// variables from a multi-task SLURM job started by submitit."""
    if int(os.environ.get("SLURM_NTASKS", "1")) <= 1 or "RANK" in os.environ:
        return False
    import submitit

    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return True


def init(device_type: str) -> World:
    """Join the process group when the job has several processes; a single process gets ``World()``."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and not _slurm_world():
        return World()
    backend = "nccl" if device_type == "cuda" else "gloo"
    # Rank 0 evaluates alone at the end while the others wait: allow an LVIS-sized evaluation.
    dist.init_process_group(backend=backend, init_method="env://", timeout=datetime.timedelta(hours=4))
    world = World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device_type == "cuda":
        torch.cuda.set_device(world.local_rank)
    log.info("process %d of %d joined the %s process group", world.rank, world.world_size, backend)
    return world


def check_device_name(name: str) -> None:
    """One-line ValueError unless ``name`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (checked where a sweep is
    planned, which may be a login node without GPUs; :func:`check_device_here` checks the machine)."""
    try:
        device = torch.device("cpu" if name == "auto" else name)
    except RuntimeError:
        raise ValueError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device={name!r}: gol trains on cpu or cuda; use auto, cpu, cuda or cuda:N")


def check_device_here(name: str) -> None:
    """One-line ValueError if ``name`` asks for a GPU this machine does not have."""
    device = torch.device("cpu" if name == "auto" else name)
    if device.type != "cuda":
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ValueError(f"device={name!r} but CUDA is not available on this machine; use device=auto or cpu")
    if device.index is not None and device.index >= count:
        raise ValueError(f"device={name!r} but this machine has {count} GPU(s) (cuda:0..cuda:{count - 1})")


def device_for(name: str, world: World) -> torch.device:
    """``auto`` picks this rank's GPU when CUDA exists, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and world.distributed:
        return torch.device("cuda", world.local_rank)
    return torch.device(name)


def mean_over_ranks(value: torch.Tensor, world: World) -> torch.Tensor:
    """Average a scalar over ranks (for logging and the non-finite check, which all ranks must agree on)."""
    value = value.detach()
    if not world.distributed:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world.world_size


def broadcast_from_main(value: T, world: World) -> T:
    """Rank 0's ``value`` on every rank (a picklable object); ``value`` itself in a single process."""
    if not world.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
