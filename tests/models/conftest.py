"""Fixtures for the detector tests: small synthetic batches of coloured rectangles with exact masks."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

NUM_CLASSES = 5

Batch = tuple[list[Tensor], list[dict[str, Tensor]]]


def make_batch(
    *,
    images: int = 2,
    height: int = 96,
    width: int = 96,
    num_classes: int = NUM_CLASSES,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Batch:
    """Images (3, H, W) in [0, 1] with 1-3 filled rectangles each, and their torchvision targets."""
    g = torch.Generator().manual_seed(seed)
    out_images, targets = [], []
    for _ in range(images):
        image = torch.rand(3, height, width, generator=g, dtype=dtype) * 0.2
        count = int(torch.randint(1, 4, (), generator=g))
        boxes, masks = [], []
        for _ in range(count):
            w = int(torch.randint(12, width // 2, (), generator=g))
            h = int(torch.randint(12, height // 2, (), generator=g))
            x0 = int(torch.randint(0, width - w, (), generator=g))
            y0 = int(torch.randint(0, height - h, (), generator=g))
            image[:, y0 : y0 + h, x0 : x0 + w] = torch.rand(3, 1, 1, generator=g, dtype=dtype)
            mask = torch.zeros(height, width, dtype=torch.uint8)
            mask[y0 : y0 + h, x0 : x0 + w] = 1
            boxes.append([x0, y0, x0 + w, y0 + h])
            masks.append(mask)
        out_images.append(image)
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=dtype),
                "labels": torch.randint(1, num_classes + 1, (count,), generator=g),
                "masks": torch.stack(masks),
            }
        )
    return out_images, targets


@pytest.fixture
def batch() -> Callable[..., Batch]:
    return make_batch
