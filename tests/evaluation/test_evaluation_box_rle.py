"""Masks pasted and encoded inside their boxes only give the RLE bytes of the full-image path: ``paste_masks``, then
``> 0.5``, then pycocotools' ``encode``."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gol.evaluation import EvaluationInputError, detections_from_output
from gol.evaluation.box_rle import encode_in_boxes
from gol.evaluation.convert import encode_box_masks, encode_masks
from gol.models.paste import paste_masks

CATEGORY_IDS = [3, 7]


@st.composite
def box(draw: st.DrawFn, height: int, width: int) -> list[float]:
    """An xyxy box: anywhere from wholly left/above to wholly right/below the image, sub-pixel to twice its size."""
    x0 = draw(st.floats(-1.5 * width, 1.5 * width, allow_nan=False))
    y0 = draw(st.floats(-1.5 * height, 1.5 * height, allow_nan=False))
    w = draw(st.one_of(st.floats(0.0, 1.0), st.floats(0.0, 2.0 * width)))  # sub-pixel boxes, then any size
    h = draw(st.one_of(st.floats(0.0, 1.0), st.floats(0.0, 2.0 * height)))
    return [x0, y0, x0 + w, y0 + h]


@st.composite
def detections(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """(N, 1, 28, 28) mask probabilities (sigmoid of random logits, some exactly 0.5 or saturated) and (N, 4) boxes."""
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    n = draw(st.integers(0, 8))
    boxes = torch.tensor([draw(box(height, width)) for _ in range(n)], dtype=torch.float32).reshape(n, 4)
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    scale = torch.tensor([draw(st.sampled_from([0.0, 0.1, 3.0, 40.0])) for _ in range(n)])  # 0: every pixel 0.5
    logits = torch.randn(n, 1, 28, 28, generator=g) * scale[:, None, None, None]
    dtype = draw(st.sampled_from([torch.float16, torch.float32, torch.float64]))
    return logits.sigmoid().to(dtype), boxes, (height, width)


def _full_path(masks: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> list[bytes]:
    return [rle["counts"] for rle in encode_masks(paste_masks(masks, boxes, size))]


@settings(max_examples=200, deadline=None)
@given(detections())
def test_box_rles_equal_the_full_image_path(case: tuple[torch.Tensor, torch.Tensor, tuple[int, int]]) -> None:
    masks, boxes, size = case
    rles = encode_box_masks(masks, boxes, size)
    assert rles.counts() == _full_path(masks, boxes, size)
    assert rles.sizes.tolist() == [list(size)] * len(boxes)


@pytest.mark.parametrize(
    "boxes",
    [
        [[-5.0, -5.0, 20.0, 30.0]],  # covers the image: runs go on from one column into the next
        [[2.0, -5.0, 20.0, 30.0], [-5.0, 3.0, 30.0, 8.0]],  # full height from column 2 on; a full-width band
        [[9.6, 11.7, 9.8, 11.9]],  # under a pixel, at the last pixel
        [[-9.0, -9.0, -4.0, -4.0], [30.0, 30.0, 40.0, 40.0]],  # wholly outside
    ],
)
@pytest.mark.parametrize("value", [0.9, 0.5, 0.1])
def test_edges_of_the_image(boxes: list[list[float]], value: float) -> None:
    size = (12, 10)
    masks = torch.full((len(boxes), 1, 28, 28), value)
    masks[:, :, 5:9, 3:20] = 1.0 - value  # a hole or an island
    box_tensor = torch.tensor(boxes)
    assert encode_box_masks(masks, box_tensor, size).counts() == _full_path(masks, box_tensor, size)


def test_runs_of_a_hand_made_mask() -> None:
    """One 2 x 2 region at x 1..2, y 2..3 of a 4 x 3 image (column-major: x * 4 + y), pixels (2,1) and (3,2) on."""
    columns = [np.array([[0.9, 0.1], [0.2, 0.7]])]  # (w, h): column x=1 holds y=2, 3; column x=2 too
    rle = encode_in_boxes(columns, np.array([[1, 2, 3, 4]]), (4, 3), threshold=0.5)
    # on: index 1 * 4 + 2 = 6 and 2 * 4 + 3 = 11 -> runs 6 zeros, 1 one, 4 zeros, 1 one

    assert mask_utils.decode({"size": [4, 3], "counts": rle[0]}).T.ravel().tolist() == [0] * 6 + [1] + [0] * 4 + [1]


def test_detections_from_box_masks_equal_those_from_pasted_masks() -> None:
    g = torch.Generator().manual_seed(0)
    n, size = 20, (30, 40)
    xy = torch.rand(n, 2, generator=g) * 40 - 5
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 25], dim=1)
    masks = torch.rand(n, 1, 28, 28, generator=g)
    common = {"boxes": boxes, "labels": torch.ones(n, dtype=torch.int64), "scores": torch.rand(n, generator=g)}
    pasted = detections_from_output(
        {**common, "masks": paste_masks(masks, boxes, size)}, image_id=1, category_ids=CATEGORY_IDS
    )
    boxed = detections_from_output(
        {**common, "box_masks": masks, "image_size": torch.tensor(size)}, image_id=1, category_ids=CATEGORY_IDS
    )
    assert boxed.to_results() == pasted.to_results()


def test_bad_box_masks() -> None:
    with pytest.raises(EvaluationInputError, match=r"\(N, 1, M, M\) with boxes \(N, 4\)"):
        encode_box_masks(torch.rand(3, 28, 28), torch.zeros(3, 4), (10, 10))
    with pytest.raises(EvaluationInputError, match=r"\(N, 1, M, M\) with boxes \(N, 4\)"):
        encode_box_masks(torch.rand(3, 1, 28, 28), torch.zeros(2, 4), (10, 10))
