"""Seeded, checkpointable random stream for the stochastic losses (Federated sampling, DropLoss drops).

Counter-based, like JAX keys: draw number ``i`` uses a fresh ``torch.Generator`` on the logits' device seeded
with ``mix(seed, i)``. The whole state is therefore ``(seed, draws)``: it is device-independent, tiny, and
restores exactly (``SeededLoss.get_extra_state`` / ``set_extra_state`` put it in every ``state_dict``).
A given (seed, draws) gives the same numbers on the same device type; CPU and CUDA streams differ, as
torch's generators do.
"""

from __future__ import annotations

from typing import Any

import torch

from gol.losses.base import ClassificationLoss

__all__ = ["SeededLoss", "SeededStream", "mix_seed"]

_MASK64 = (1 << 64) - 1


def mix_seed(seed: int, counter: int) -> int:
    """A 64-bit seed for draw ``counter`` of stream ``seed`` (SplitMix64 finaliser over both)."""
    x = (seed * 0xD1B54A32D192ED03 + counter * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class SeededStream:
    """A reproducible sequence of generators: ``next_generator(device)`` advances the stream by one draw."""

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.seed = seed
        self.draws = 0

    def next_generator(self, device: torch.device) -> torch.Generator:
        generator = torch.Generator(device=device)
        generator.manual_seed(mix_seed(self.seed, self.draws))
        self.draws += 1
        return generator

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
    """A loss that draws random numbers: owns a ``SeededStream`` checkpointed as the module's extra state."""

    def _init_stream(self, seed: int) -> None:
        self._stream = SeededStream(seed)

    @property
    def seed(self) -> int:
        return self._stream.seed

    def next_generator(self, device: torch.device) -> torch.Generator:
        """The generator for this step's random choices (advances the stream)."""
        return self._stream.next_generator(device)

    def get_extra_state(self) -> dict[str, int]:
        return self._stream.state()

    def set_extra_state(self, state: Any) -> None:
        self._stream.load_state(state)
