"""GolRPN: torchvision's RPN loss with smooth-L1, mmdetection's with L1 (same anchors, samples, normalisation)."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

from gol.models import build_maskrcnn_r50_fpn, build_tiny
from gol.models.rpn import GolRPN, rpn_box_loss

TOP_N = {"training": 50, "testing": 20}


def _rpns(box_loss: str) -> tuple[GolRPN, RegionProposalNetwork]:
    anchors = AnchorGenerator(((16,),), ((0.5, 1.0, 2.0),))
    head = RPNHead(4, 3)
    ours = GolRPN(anchors, head, pre_nms_top_n=TOP_N, post_nms_top_n=TOP_N, box_loss=box_loss)
    theirs = RegionProposalNetwork(anchors, head, 0.7, 0.3, 256, 0.5, TOP_N, TOP_N, 0.7)
    return ours, theirs


def _inputs(seed: int, anchors: int = 300) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    objectness = torch.randn(anchors, 1, generator=g, dtype=torch.float64)
    deltas = torch.randn(anchors, 4, generator=g, dtype=torch.float64)
    labels = [torch.randint(-1, 2, (anchors // 2,), generator=g).double() for _ in range(2)]
    targets = [torch.randn(anchors // 2, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    return objectness, deltas, labels, targets


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_smooth_l1_is_torchvisions_rpn_loss(seed: int) -> None:
    ours, theirs = _rpns("smooth_l1")
    objectness, deltas, labels, targets = _inputs(seed)
    torch.manual_seed(seed)  # the fg/bg sampler draws from the global stream
    expected = theirs.compute_loss(objectness, deltas, labels, targets)
    torch.manual_seed(seed)
    got = ours.compute_loss(objectness, deltas, labels, targets)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_l1_is_mmdetections_rpn_box_loss(seed: int) -> None:
    """mmdet 2.21 ``AnchorHead.loss_single``: L1 over the sampled positives' deltas / number of sampled anchors."""
    ours, _ = _rpns("l1")
    objectness, deltas, labels, targets = _inputs(seed)
    torch.manual_seed(seed)
    pos, neg = ours.fg_bg_sampler(labels)
    pos_mask, neg_mask = torch.cat(pos).bool(), torch.cat(neg).bool()
    expected = (deltas[pos_mask] - torch.cat(targets)[pos_mask]).abs().sum() / (pos_mask.sum() + neg_mask.sum())
    torch.manual_seed(seed)
    _, box = ours.compute_loss(objectness, deltas, labels, targets)
    torch.testing.assert_close(box, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("box_loss", ["l1", "smooth_l1"])
def test_rpn_box_loss_gradcheck(box_loss: str) -> None:
    g = torch.Generator().manual_seed(0)
    deltas = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randn(7, 4, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        partial(rpn_box_loss, targets=targets, num_sampled=20, box_loss=box_loss), (deltas,)
    )


@pytest.mark.parametrize(("builder", "kwargs", "expected"), [
    (build_maskrcnn_r50_fpn, {}, "l1"),
    (build_maskrcnn_r50_fpn, {"box_loss": "smooth_l1"}, "smooth_l1"),
    (build_tiny, {}, "smooth_l1"),
])  # fmt: skip
def test_the_detectors_rpn_follows_their_box_loss(builder, kwargs, expected: str) -> None:
    from gol.activations import Softmax
    from gol.losses import CrossEntropyLoss

    model = builder(num_classes=3, cls_loss=CrossEntropyLoss(activation=Softmax(), num_classes=3),
                    train_sizes=(64,), test_size=64, max_size=96, **kwargs)  # fmt: skip
    assert isinstance(model.rpn, GolRPN) and model.rpn.box_loss.value == expected
    assert model.rpn._post_nms_top_n["training"] == (1000 if builder is build_maskrcnn_r50_fpn else 300)
