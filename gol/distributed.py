"""Data-parallel training and evaluation over the processes a launcher gives a job (torchrun, or the tasks of a SLURM
job).

One process per GPU (or per CPU worker with the gloo backend). Rank 0 alone writes the run record, W&B and
checkpoints; every rank reads the same checkpoint on resume.

Evaluation runs on every rank: each predicts its shard of the val split and :func:`gather_to_main` brings the
detections to rank 0, which alone computes the metrics (CPU work: minutes at LVIS val scale) while the others wait
for it (:func:`wait_for_main`).

A job whose process dies or fails must end soon, not at a timeout hours later. Collectives (training's, and the
gather of the detections, which a rank reaches when its shard is done) use ``COLLECTIVE_TIMEOUT`` (PyTorch's own
default, 10 minutes: an NCCL job whose peer hangs ends then; a dead peer ends a gloo job at once, and the SLURM
presets' ``--kill-on-bad-exit`` ends every task of a job when one exits with an error). The one longer wait, the
other ranks waiting while rank 0 computes the metrics, happens on the job's key-value store with
``METRICS_TIMEOUT`` (:func:`wait_for_main`), used only there: rank 0 serves the store, so that wait ends at once
if rank 0 dies, and its timeout only bounds a rank 0 that is alive but stuck.

A rank that fails writes its error beside the run (:func:`note_failure`); rank 0, which keeps the record, names
that rank's error instead of its own "connection closed" (:func:`failure_of_job`).
"""

from __future__ import annotations

import datetime
import logging
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from gol.files import atomic_write
from gol.record import FAILURES, failure_note, first_line

log = logging.getLogger(__name__)

T = TypeVar("T")

COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)
# Rank 0 computing the metrics of LVIS val (~20k images, ~6M detections) from the gathered detections: about a
# minute per protocol with hotcoco (the default), ~20 minutes per protocol with lvis-api itself (engine "lvis";
# python -m gol.bench eval: 5 s and 126 s for 620k detections); this covers lvis-api with all three protocols.
METRICS_TIMEOUT = datetime.timedelta(hours=2)
# Bytes each process sends per round of gather_to_main: the device buffers of a gather stay this small.
GATHER_CHUNK_BYTES = 64 * 2**20
_MAIN_ARRIVED = "gol/main_arrived"  # the store key of wait_for_main (one wait per job)


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
    dist.init_process_group(backend=backend, init_method="env://", timeout=COLLECTIVE_TIMEOUT)
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


def gather_to_main(value: T, world: World) -> list[T] | None:
    """Every rank's ``value`` (a picklable object) on rank 0, in rank order; None on the other ranks; ``[value]``
    in a single process.

    The values travel pickled, in rounds of at most ``GATHER_CHUNK_BYTES`` per process (as device tensors with
    NCCL, which carries nothing else; as CPU tensors with gloo), so no buffer ever holds a split's detections
    at once on the device. Rank 0 keeps its own value as it is, and turns each other rank's bytes back into its
    value as soon as they are all in.
    """
    if not world.distributed:
        return [value]
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    payload = b"" if world.is_main else pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world.world_size)]
    dist.all_gather(sizes, torch.tensor([len(payload)], dtype=torch.int64, device=device))
    lengths = [int(size.item()) for size in sizes]
    values: list[Any] = [value] + [None] * (world.world_size - 1)
    pending = {rank: bytearray() for rank in range(1, world.world_size)} if world.is_main else {}
    for start in range(0, max(lengths), GATHER_CHUNK_BYTES):
        width = min(GATHER_CHUNK_BYTES, max(lengths) - start)
        chunk = torch.zeros(width, dtype=torch.uint8, device=device)
        piece = payload[start : start + width]
        if piece:
            chunk[: len(piece)] = torch.frombuffer(bytearray(piece), dtype=torch.uint8).to(device)
        slots = [torch.empty_like(chunk) for _ in lengths] if world.is_main else []
        dist.gather(chunk, slots or None, dst=0)
        for rank, buffer in list(pending.items()):  # rank 0's alone
            buffer += slots[rank][: min(width, lengths[rank] - start)].cpu().numpy().tobytes()
            if len(buffer) == lengths[rank]:
                values[rank] = pickle.loads(buffer)
                del pending[rank]
    return values if world.is_main else None


def wait_for_main(world: World) -> None:
    """The other ranks wait here until rank 0 arrives, for up to ``METRICS_TIMEOUT`` (rank 0 computing the metrics
    alone).

    The wait is on the process group's key-value store, which rank 0's process serves: no second communicator
    (a gloo group would need a working gloo network on every NCCL cluster), and if rank 0 dies the wait ends at
    once with a closed connection."""
    if not world.distributed:
        return
    store = dist.distributed_c10d._get_default_store()
    if world.is_main:
        store.set(_MAIN_ARRIVED, "1")
    else:
        store.wait([_MAIN_ARRIVED], METRICS_TIMEOUT)
    dist.barrier()  # every rank is past the wait before rank 0 (the store's server) may leave


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def note_failure(run_dir: Path, world: World, error: BaseException) -> None:
    """Leave the first line of this rank's own error in ``<run dir>/failures/rank<N>.txt``, for rank 0's record
    (a collective that failed because another process is gone is not this rank's own error: nothing is left)."""
    if not world.distributed or world.is_main or lost_peer(error):
        return
    folder = run_dir / FAILURES
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"rank{world.rank}.txt", lambda f: f.write(first_line(error) + "\n"))
    except OSError as unwritable:
        log.error("process %d could not leave its error in %s: %s", world.rank, folder, unwritable)


def clear_failures(run_dir: Path) -> None:
    """Forget the failures of an earlier attempt (rank 0, before the ranks start work)."""
    folder = run_dir / FAILURES
    if folder.is_dir():
        for path in folder.iterdir():
            path.unlink(missing_ok=True)


class JobFailure(RuntimeError):
    """A multi-process job failed in one of its processes; the message names which and why."""


def failure_of_job(run_dir: Path, world: World, error: BaseException, *, wait_s: float = 2.0) -> BaseException:
    """The error rank 0 records when the job fails: the own error another rank left (the first failure: the others'
    errors are only its consequences), else rank 0's own, named as a lost process when it is one. When rank 0's
    error is a lost process, a note is waited for up to ``wait_s`` (that rank may still be writing it)."""
    if not world.distributed:
        return error
    deadline = time.monotonic() + (wait_s if lost_peer(error) else 0.0)
    while True:
        note = failure_note(run_dir, world.world_size)
        if note is not None:
            return JobFailure(note)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if lost_peer(error):
        return JobFailure(f"another process of the job died or stopped responding ({first_line(error)})")
    return error


def lost_peer(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because another process is gone or did not answer in time."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(s in text for s in _LOST_PEER)


# Messages of errors that another process's end causes: a collective whose peer is gone or silent, and a loader
# worker stopped by the SIGTERM with which SLURM ends the job's other tasks (srun --kill-on-bad-exit).
_LOST_PEER = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Timed out",
              "is killed by signal: Terminated")  # fmt: skip
