"""Test-time mask probabilities of the predicted class only, against torchvision's all-classes path."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.models.detection.roi_heads import maskrcnn_inference

from gol.models.predictors import build_mask_predictor, mask_probabilities

D, K = 8, 30  # mask head width, foreground classes


def _inputs(seed: int, counts: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(M, D, 14, 14) mask head features and per-image labels in 1..K."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(sum(counts), D, 14, 14, generator=g, dtype=torch.float64).relu()
    labels = [torch.randint(1, K + 1, (n,), generator=g) for n in counts]
    return features, labels


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**31 - 1),
    counts=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=3),
    normed=st.booleans(),
)
def test_equals_torchvisions_inference_on_all_classes(seed: int, counts: list[int], normed: bool) -> None:
    torch.manual_seed(seed)
    predictor = build_mask_predictor(D, D, K, normed=normed).double()
    nn.init.normal_(predictor.mask_fcn_logits.bias)  # a bias that differs per class must be picked per class too
    features, labels = _inputs(seed, counts)
    with torch.no_grad():
        ours = mask_probabilities(predictor, features, labels)
        reference = maskrcnn_inference(predictor(features), labels)
    assert [tuple(p.shape) for p in ours] == [(n, 1, 28, 28) for n in counts]
    for got, want in zip(ours, reference):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_other_predictors_give_torchvisions_result() -> None:
    torch.manual_seed(0)
    predictor = MaskRCNNPredictor(D, D, K + 1).double()  # torchvision's own: same layers, so the class-only path
    features, labels = _inputs(1, [3, 2])
    wrapped = nn.Sequential(predictor)  # other children: torchvision's path
    three_by_three = build_mask_predictor(D, D, K, normed=False).double()
    three_by_three.mask_fcn_logits = nn.Conv2d(D, K + 1, 3, padding=1).double()  # not a per-pixel map
    with torch.no_grad():
        for module in (predictor, wrapped, three_by_three):
            got = mask_probabilities(module, features, labels)
            want = maskrcnn_inference(module(features), labels)
            for a, b in zip(got, want):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("normed", [False, True])
def test_skips_the_logits_of_other_classes(normed: bool) -> None:
    """The 1x1 layer itself is never run on all K + 1 channels."""
    predictor = build_mask_predictor(D, D, K, normed=normed)
    calls = []
    predictor.mask_fcn_logits.register_forward_hook(lambda *args: calls.append(args))
    features, labels = _inputs(2, [4])
    with torch.no_grad():
        mask_probabilities(predictor, features.float(), labels)
    assert calls == []
