"""Shared builders for the loss and activation tests (session fixtures returning plain functions)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch
from torch import Tensor

from gol.data.stats import CategoryStats


def _make_stats(image_count: Sequence[int], num_images: int = 1000) -> CategoryStats:
    """CategoryStats with the given per-class image counts (frequency groups by the LVIS rule)."""
    counts = torch.tensor(list(image_count), dtype=torch.int64)
    k = counts.numel()
    return CategoryStats(
        category_ids=tuple(range(1, k + 1)),
        names=tuple(f"c{i}" for i in range(1, k + 1)),
        image_count=counts,
        instance_count=counts * 2,
        frequency=tuple("r" if c <= 10 else "c" if c <= 100 else "f" for c in counts.tolist()),
        num_images=num_images,
    )


def _make_batch(
    rows: int,
    num_classes: int,
    *,
    seed: int = 0,
    scale: float = 3.0,
    shift: float = -1.0,
    background_fraction: float = 0.5,
    dtype: torch.dtype = torch.float32,
    width: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Random logits (rows, width or K) and labels in [0, K], about ``background_fraction`` of them 0."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(1, num_classes + 1, (rows,), generator=g)
    labels[torch.rand(rows, generator=g) < background_fraction] = 0
    logits = torch.randn(rows, width or num_classes, generator=g, dtype=dtype) * scale + shift
    return logits, labels


def _one_hot(
    labels: Tensor, num_classes: int, *, background_column: bool, dtype: torch.dtype = torch.float32
) -> Tensor:
    """(R,) labels -> targets over K + 1 columns (background at 0) or K columns (background RoIs all zero)."""
    full = torch.nn.functional.one_hot(labels, num_classes + 1).to(dtype)  # (R, K + 1)
    return full if background_column else full[:, 1:]


@pytest.fixture(scope="session")
def make_stats() -> Callable[..., CategoryStats]:
    return _make_stats


@pytest.fixture(scope="session")
def make_batch() -> Callable[..., tuple[Tensor, Tensor]]:
    return _make_batch


@pytest.fixture(scope="session")
def one_hot() -> Callable[..., Tensor]:
    return _one_hot
