"""Data-side augmentation of (image, target) pairs.

Shape shorthand: image (3, H, W) uint8; target ``boxes`` (N, 4) xyxy, ``masks`` (N, H, W) uint8.

Only the flip lives here: the shorter-side (multi-scale) resize runs inside the model on its device
(``gol.models.transform``), as torchvision does, so predictions come back in original image coordinates.
Randomness comes from torch's global RNG unless a generator is given: the engine checkpoints torch's RNG states, and
DataLoader workers derive their seeds from it, so a run replays the same flips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

Target = dict[str, Any]
Transform = Callable[[Tensor, Target], tuple[Tensor, Target]]


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Tensor, target: Target) -> tuple[Tensor, Target]:
        for t in self.transforms:
            image, target = t(image, target)
        return image, target

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


def hflip(image: Tensor, target: Target) -> tuple[Tensor, Target]:
    """Mirror an image and its target left-right (boxes stay xyxy with x1 < x2)."""
    width = image.shape[-1]
    out = dict(target)
    boxes = target["boxes"]
    flipped = boxes.clone()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    out["boxes"] = flipped
    if "masks" in target:
        out["masks"] = target["masks"].flip(-1)
    return image.flip(-1), out


class RandomHorizontalFlip:
    """Flip with probability ``p`` (LVIS recipes: 0.5), drawing from ``generator`` or torch's global RNG."""

    def __init__(self, p: float = 0.5, *, generator: torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"flip probability must lie in [0, 1], got {p}")
        self.p = p
        self.generator = generator

    def __call__(self, image: Tensor, target: Target) -> tuple[Tensor, Target]:
        # Always draw, even for p in {0, 1}, so the RNG stream does not depend on p.
        if torch.rand((), generator=self.generator).item() < self.p:
            return hflip(image, target)
        return image, target

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"
