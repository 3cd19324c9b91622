"""Seeded, checkpointable random streams for the stochastic losses (Federated sampling, DropLoss drops).

Counter-based, like JAX keys. Each forward pass is one *draw* ``i``: a group ``g`` of images (of ``G`` groups in
the process's batch, ``gol.losses.groups``) gets a fresh ``torch.Generator`` seeded with
``mix_seed(substream_seed(seed, s), i)``, where ``s = rank * G + g`` is the data-parallel rank's group in the
whole job. In the official runs (4 images per GPU, one group per process) ``s`` is the GPU index, so every
process draws its own numbers; a process holding several groups draws what the GPUs it stands in for would.

The draw counter advances once per forward pass, whatever the data (even with no RoI), so all ranks stay in
lockstep and the whole checkpointed state is ``(seed, draws)``: rank 0 saves it, every rank loads it and
continues its own stream exactly (``SeededLoss.get_extra_state`` / ``set_extra_state``). The rank is not part of
the state; the engine sets it with ``set_stream_rank`` after building the model. A given (seed, draws, s) gives
the same numbers on the same device type; CPU and CUDA streams differ, as torch's generators do.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gol.losses.base import ClassificationLoss
from gol.losses.groups import check_images_per_group, group_sizes

__all__ = ["SeededLoss", "SeededStream", "make_generator", "mix_seed", "set_stream_rank", "substream_seed"]

_MASK64 = (1 << 64) - 1


def mix_seed(seed: int, counter: int) -> int:
    """A 64-bit seed for draw ``counter`` of stream ``seed`` (SplitMix64 finaliser over both)."""
    x = (seed * 0xD1B54A32D192ED03 + counter * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def substream_seed(seed: int, stream: int) -> int:
    """The seed of sub-stream ``stream`` >= 0: ``seed`` itself for 0, else ``mix_seed(seed, -stream)`` (a negative
    counter, which no draw of ``seed`` uses)."""
    if stream < 0:
        raise ValueError(f"sub-stream index must be >= 0, got {stream}")
    return seed if stream == 0 else mix_seed(seed, -stream)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def _check_rank(rank: int) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        raise ValueError(f"rank must be a non-negative int (the data-parallel process index), got {rank!r}")
    return rank


class SeededStream:
    """A reproducible sequence of draws; ``next_seeds(count)`` advances the stream by one draw."""

    def __init__(self, seed: int, *, rank: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.seed = seed
        self.draws = 0
        self.rank = _check_rank(rank)

    def next_seeds(self, count: int) -> list[int]:
        """This draw's generator seeds for groups ``0 .. count - 1`` of this rank (sub-streams ``rank * count + g``)."""
        seeds = [mix_seed(substream_seed(self.seed, self.rank * count + g), self.draws) for g in range(count)]
        self.draws += 1
        return seeds

    def state(self) -> dict[str, int]:
        return {"seed": self.seed, "draws": self.draws}

    def load_state(self, state: Any) -> None:
        if not isinstance(state, dict) or set(state) != {"seed", "draws"}:
            raise ValueError(f"random-stream state must be a dict with keys 'seed' and 'draws', got {state!r}")
        seed, draws = state["seed"], state["draws"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (seed, draws)) or draws < 0:
            raise ValueError(f"random-stream state needs an int seed and a non-negative int draws, got {state!r}")
        self.seed, self.draws = seed, draws


class SeededLoss(ClassificationLoss):
    """A loss that draws random numbers and computes its batch statistics per group of images.

    Owns a ``SeededStream`` checkpointed as the module's extra state. Each forward pass splits the RoIs into
    groups of ``images_per_group`` images (``rois_per_image`` from the RoI heads; without it, one group) and
    hands ``_grouped_loss`` the RoIs per group and one generator seed per group. The value stays "sum over
    classes / number of RoIs" over the whole process batch: with groups of equal RoI counts (512 sampled RoIs per
    image), the mean of the per-group official losses, as the official data-parallel gradient averages the GPUs'.
    """

    def _init_random(self, *, seed: int, images_per_group: int | None) -> None:
        self._stream = SeededStream(seed)
        self.images_per_group = check_images_per_group(images_per_group)

    @property
    def seed(self) -> int:
        return self._stream.seed

    @property
    def rank(self) -> int:
        return self._stream.rank

    def set_rank(self, rank: int) -> None:
        """This process's data-parallel rank (not checkpointed: each rank sets its own after loading)."""
        self._stream.rank = _check_rank(rank)

    def _checked_forward(self, logits: Tensor, labels: Tensor, rois_per_image: list[int] | None) -> Tensor:
        sizes = group_sizes(rois_per_image, logits.shape[0], self.images_per_group, warn=self.rank == 0)
        seeds = self._stream.next_seeds(len(sizes))  # one draw per call, whatever the data: ranks stay in lockstep
        if logits.shape[0] == 0:
            return self.empty_loss(logits)
        return self._grouped_loss(logits, labels, group_sizes=sizes, seeds=seeds)

    def _grouped_loss(self, logits: Tensor, labels: Tensor, *, group_sizes: list[int], seeds: list[int]) -> Tensor:
        """The loss of validated, non-empty inputs, with RoIs per group and a generator seed per group."""
        raise NotImplementedError(f"{type(self).__name__} must implement _grouped_loss")

    def get_extra_state(self) -> dict[str, int]:
        return self._stream.state()

    def set_extra_state(self, state: Any) -> None:
        self._stream.load_state(state)


def set_stream_rank(module: nn.Module, rank: int) -> None:
    """Set the data-parallel rank of every ``SeededLoss`` in ``module`` (every cascade stage's, for one)."""
    for child in module.modules():
        if isinstance(child, SeededLoss):
            child.set_rank(rank)
