"""The mmdet FPN RoI pooling (``roi_align: mmdet``) against per-RoI ``torchvision.ops.roi_align``, and the default
(torchvision) pooling left as it was."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.poolers import LevelMapper

from gol.config.detector import RoIAlignMode
from gol.models.resnet_fpn import fpn_roi_align
from gol.models.roi_align import AlignedMultiScaleRoIAlign, fpn_roi_levels

IMAGE_SHAPES = [(256, 320), (224, 300)]  # (H, W) of the two images; the batch is padded to 256 x 320
STRIDES = (4, 8, 16, 32)


def _features(channels: int = 3, seed: int = 0) -> OrderedDict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return OrderedDict(
        (str(level), torch.randn(2, channels, 256 // stride, 320 // stride, generator=g, dtype=torch.float64))
        for level, stride in enumerate(STRIDES)
    )


def _boxes(seed: int = 0) -> list[Tensor]:
    """Boxes of every level (sides 3-700 px), many crossing the image border."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for count, (height, width) in zip((40, 25), IMAGE_SHAPES):
        side = torch.exp(torch.empty(count, 2, dtype=torch.float64).uniform_(math.log(3), math.log(700), generator=g))
        corner = torch.rand(count, 2, generator=g, dtype=torch.float64) * torch.tensor([width, height]) - 10
        out.append(torch.cat([corner, corner + side], dim=1))
    return out


def _expected_level(box: Tensor) -> int:
    """mmdet ``map_roi_levels``, one box at a time: floor(log2(sqrt(area) / 56 + 1e-6)) clamped to [0, 3]."""
    x1, y1, x2, y2 = (float(v) for v in box)
    scale = math.sqrt((x2 - x1) * (y2 - y1))
    return min(3, max(0, math.floor(math.log2(scale / 56 + 1e-6))))


def test_mmdet_pooling_is_aligned_adaptive_roi_align_on_the_mmdet_level() -> None:
    features, boxes = _features(), _boxes()
    pooler = fpn_roi_align(7, RoIAlignMode.mmdet)
    assert isinstance(pooler, AlignedMultiScaleRoIAlign)
    pooled = pooler(features, boxes, IMAGE_SHAPES)
    assert pooled.shape == (65, 3, 7, 7) and pooled.dtype == torch.float64

    expected, levels = [], []
    for image, image_boxes in enumerate(boxes):
        for box in image_boxes:
            level = _expected_level(box)
            levels.append(level)
            roi = torch.cat([torch.tensor([float(image)], dtype=torch.float64), box])[None]  # (1, 5)
            expected.append(
                roi_align(
                    features[str(level)], roi, 7, spatial_scale=1 / STRIDES[level], sampling_ratio=0, aligned=True
                )
            )
    assert set(levels) == {0, 1, 2, 3}  # every level is exercised
    torch.testing.assert_close(pooled, torch.cat(expected), rtol=0, atol=0)


def test_mmdet_mask_pooling_and_gradient() -> None:
    features, boxes = _features(channels=2), _boxes(seed=1)
    for feature in features.values():
        feature.requires_grad_(True)
    pooled = fpn_roi_align(14, RoIAlignMode.mmdet)(features, boxes, IMAGE_SHAPES)
    assert pooled.shape == (65, 2, 14, 14)
    pooled.sum().backward()
    assert all(f.grad is not None and torch.isfinite(f.grad).all() for f in features.values())


def test_torchvision_pooling_is_unchanged() -> None:
    features, boxes = _features(), _boxes()
    pooler = fpn_roi_align(7)
    assert type(pooler) is MultiScaleRoIAlign and pooler.sampling_ratio == 2
    stock = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=7, sampling_ratio=2)
    torch.testing.assert_close(pooler(features, boxes, IMAGE_SHAPES), stock(features, boxes, IMAGE_SHAPES))
    torch.testing.assert_close(fpn_roi_align(7, RoIAlignMode.torchvision)(features, boxes, IMAGE_SHAPES),
                               stock(features, boxes, IMAGE_SHAPES))  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    width=st.floats(0.5, 2000.0),
    height=st.floats(0.5, 2000.0),
)
def test_level_mapping_agrees_with_torchvisions_away_from_level_boundaries(width: float, height: float) -> None:
    """torchvision's LevelMapper (224 px at level 4 of levels 2-5) picks the same level, except within ~1e-6 of a
    boundary, where the two epsilons (inside / outside the logarithm) differ."""
    box = torch.tensor([[10.0, 20.0, 10.0 + width, 20.0 + height]], dtype=torch.float64)
    ratio = math.log2(math.sqrt(width * height) / 56)
    if abs(ratio - round(ratio)) < 1e-5:
        return
    ours = fpn_roi_levels(box, num_levels=4)
    torchvision_level = LevelMapper(2, 5, canonical_scale=224, canonical_level=4)([box])
    assert ours.dtype == torch.int64
    assert int(ours) == int(torchvision_level) == _expected_level(box[0])


def test_bad_strides_fail_in_one_line() -> None:
    with pytest.raises(ValueError, match="one positive stride per feature level"):
        AlignedMultiScaleRoIAlign(["0", "1"], 7, strides=(4, 8, 16))
