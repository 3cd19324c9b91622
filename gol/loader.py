"""Deterministic, resumable streams of training batches.

The sampler's epoch order is a pure function of (seed, epoch), and every sample's augmentation draws from its
own seed (a function of seed, epoch and position), so a run resumed mid-epoch from a checkpoint sees exactly the
batches and flips an uninterrupted run would have seen, whatever the number of loader workers.

A sample that cannot be loaded (an image file removed or damaged during the run) fails the run, never skipped: its
error travels from the loader worker as a value and is raised again in the training process as it was raised, so
the run's one-line error names the file (an exception raised inside a worker would reach the training process
with "Caught ... in DataLoader worker process 0" as its first line instead). Inference's loader carries its
errors the same way (:class:`CarriedFailures`).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from gol.data import DataFormatError, collate

# Errors of bad data that fail the run with their own one-line message, wherever the sample was loaded.
DATA_ERRORS = (DataFormatError, FileNotFoundError)


@dataclass(frozen=True)
class LoadFailure:
    """A sample's data error, carried out of the loader worker to be raised in the training process."""

    error: BaseException


def collate_or_failure(batch: list[Any]) -> Any:
    """``collate``, or the first ``LoadFailure`` of the batch."""
    failure = next((item for item in batch if isinstance(item, LoadFailure)), None)
    return failure if failure is not None else collate(batch)


_PR_SET_PDEATHSIG = 1  # prctl(2)


def end_with_parent(parent: int, worker_id: int) -> None:
    """A DataLoader ``worker_init_fn`` (with ``functools.partial(end_with_parent, os.getpid())``): on Linux the
    worker is killed as soon as the process that started it dies. A forked worker holds that process's sockets,
    the process group's among them: a worker outliving a killed rank would keep its connections open, and the
    job's other ranks would wait for it instead of failing at once."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """Seed of the augmentation of the sample at ``position`` of ``epoch``."""
    return ((seed * 1_000_003 + epoch) * 10_000_019 + position) % (2**63 - 1)


def load_or_failure(dataset: Dataset, index: Any) -> Any:
    """``dataset[index]``, or the sample's data error as a ``LoadFailure``."""
    try:
        return dataset[index]
    except DATA_ERRORS as error:
        return LoadFailure(error)


class CarriedFailures(Dataset):
    """Wraps a dataset so that a sample's data error comes back as a ``LoadFailure`` value (batch it with
    :func:`collate_or_failure`, raise ``batch.error`` where the batch arrives)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        return load_or_failure(self.dataset, index)


class SeededSamples(Dataset):
    """Wraps a dataset so that item ``(index, seed)`` is produced under its own RNG seed.

    The global torch RNG is forked around each item, so loading in the main process (``num_workers=0``) leaves
    the training RNG stream untouched.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return load_or_failure(self.dataset, index)


@dataclass
class StreamPosition:
    """Where the stream stands: the next batch starts at ``position`` of ``epoch``'s order."""

    epoch: int = 0
    position: int = 0


def batches(
    dataset: Dataset,
    sampler: Any,
    *,
    batch_size: int,
    start: StreamPosition,
    seed: int,
    num_workers: int,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> Generator[tuple[StreamPosition, tuple[list[Any], list[Any]]], None, None]:
    """Endless (position after the batch, batch) pairs; incomplete trailing batches of an epoch are dropped.

    ``batch_size`` is the global batch: with several processes, rank r loads the r-th equal slice of every
    global batch, so the union over ranks is exactly the batch a single process would load. ``pin_memory`` (for
    CUDA) lets the step's ``non_blocking`` copies overlap with the GPU's work.
    """
    if batch_size % world_size:
        raise ValueError(
            f"schedule.ims_per_batch={batch_size} cannot be split over {world_size} processes; use a multiple of {world_size}"
        )
    per_rank = batch_size // world_size
    seeded = SeededSamples(dataset)
    epoch, position = start.epoch, start.position
    while True:
        sampler.set_epoch(epoch)
        order = [int(i) for i in sampler]
        usable = len(order) // batch_size * batch_size
        if usable == 0:
            raise ValueError(
                f"the training split yields {len(order)} samples per epoch, fewer than one batch of {batch_size}; "
                "lower schedule.ims_per_batch or use a larger dataset"
            )
        plan = [
            [
                (order[p], sample_seed(seed, epoch, p))
                for p in range(first + rank * per_rank, first + (rank + 1) * per_rank)
            ]
            for first in range(position, usable, batch_size)
        ]
        loader = DataLoader(
            seeded,
            batch_sampler=plan,
            collate_fn=collate_or_failure,
            num_workers=num_workers,
            pin_memory=pin_memory,
            generator=torch.Generator().manual_seed(seed + epoch + 1_000 * rank),
            worker_init_fn=functools.partial(end_with_parent, os.getpid()),
        )
        for batch in loader:
            if isinstance(batch, LoadFailure):
                raise batch.error
            position += batch_size
            yield StreamPosition(epoch, position), batch
        epoch, position = epoch + 1, 0
