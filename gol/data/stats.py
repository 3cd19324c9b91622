"""Per-category statistics of a training set, computed once in the data layer and handed to the losses.

Shape shorthand: K = number of foreground categories. Index k (0-based) of every per-category tensor is the
category whose contiguous label is k + 1 (label 0 is background, torchvision's convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

FREQUENCY_GROUPS = ("r", "c", "f")


@dataclass(frozen=True)
class CategoryStats:
    """What EQL, Federated loss, DropLoss, GOL and Seesaw need to know about the training set.

    Attributes:
        category_ids: (K,) dataset category ids in label order (label = index + 1).
        names: (K,) category names.
        image_count: (K,) int64, number of training images that contain the category.
        instance_count: (K,) int64, number of training instances of the category.
        frequency: (K,) LVIS frequency group per category: "r" (<= 10 images), "c" (11-100), "f" (> 100).
        num_images: number of training images (the denominator of the image frequency).
    """

    category_ids: tuple[int, ...]
    names: tuple[str, ...]
    image_count: Tensor
    instance_count: Tensor
    frequency: tuple[str, ...]
    num_images: int

    def __post_init__(self) -> None:
        k = len(self.category_ids)
        for name in ("names", "frequency"):
            if len(getattr(self, name)) != k:
                raise ValueError(f"CategoryStats.{name} has {len(getattr(self, name))} entries, expected {k}")
        for name in ("image_count", "instance_count"):
            t = getattr(self, name)
            if t.shape != (k,):
                raise ValueError(f"CategoryStats.{name} has shape {tuple(t.shape)}, expected ({k},)")
        bad = sorted(set(self.frequency) - set(FREQUENCY_GROUPS))
        if bad:
            raise ValueError(f"CategoryStats.frequency holds {bad}; expected only 'r', 'c' or 'f'")
        if self.num_images <= 0:
            raise ValueError(f"CategoryStats.num_images must be positive, got {self.num_images}")

    @property
    def num_classes(self) -> int:
        """K, the number of foreground categories."""
        return len(self.category_ids)

    @property
    def image_frequency(self) -> Tensor:
        """(K,) float64: fraction of training images that contain each category (EQL's f_j)."""
        return self.image_count.to(torch.float64) / self.num_images

    def group_mask(self, group: str) -> Tensor:
        """(K,) bool: categories in frequency group ``group`` ("r", "c" or "f")."""
        if group not in FREQUENCY_GROUPS:
            raise ValueError(f"unknown frequency group {group!r}; expected one of {FREQUENCY_GROUPS}")
        return torch.tensor([f == group for f in self.frequency], dtype=torch.bool)
