"""gol's batched NMS keeps exactly what torchvision's keeps, in its order, on both sides of its size rule."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops import boxes as box_ops

from gol.models.nms import LOOP_ABOVE, batched_nms


def _candidates(seed: int, n: int, classes: int, ties: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 60
    wh = torch.rand(n, 2, generator=g) * 30 + 0.5
    boxes = torch.cat([xy, xy + wh], dim=1)  # (n, 4)
    if n:
        boxes[n // 2 :: 7] = boxes[0].clone()  # identical boxes, some in the same class (n = 1: box 0 itself)
    scores = torch.rand(n, generator=g)
    if ties:
        scores = (scores * 4).round() / 4  # many equal scores
    idxs = torch.randint(1, classes + 1, (n,), generator=g)
    return boxes, scores, idxs


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 3_000), classes=st.sampled_from([1, 3, 50, 1203]),
       ties=st.booleans(), threshold=st.sampled_from([0.3, 0.5, 0.7]))  # fmt: skip
def test_batched_nms_equals_torchvision(seed: int, n: int, classes: int, ties: bool, threshold: float) -> None:
    boxes, scores, idxs = _candidates(seed, n, classes, ties)
    assert torch.equal(batched_nms(boxes, scores, idxs, threshold), box_ops.batched_nms(boxes, scores, idxs, threshold))


def test_the_per_class_path_is_taken_above_torchvisions_rule() -> None:
    boxes, scores, idxs = _candidates(1, LOOP_ABOVE["cpu"], 1203, ties=True)  # 4 x n numbers: well above the rule
    assert boxes.numel() > LOOP_ABOVE["cpu"]
    assert torch.equal(batched_nms(boxes, scores, idxs, 0.5), box_ops.batched_nms(boxes, scores, idxs, 0.5))
