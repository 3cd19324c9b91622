"""Test-time scoring (``activation.scoring``) and classifier initialisation (``activation.init``).

The softmax scoring is checked against an independent transcription of mmdetection 2.21's
``BBoxHead.get_bboxes`` for a head whose loss defines no custom activation (a plain
``CrossEntropyLoss(use_sigmoid=True)``): ``F.softmax(cls_score, dim=-1)`` over C + 1 logits with the background
class *last*, then the background column dropped by ``multiclass_nms`` (``scores[:, :-1]``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gol.activations import Gumbel, Sigmoid, Softmax
from gol.losses import DropLoss, EQLLoss, FederatedLoss
from gol.losses.base import InvalidPairError
from gol.losses.cross_entropy import CrossEntropyLoss
from gol.models.predictors import GolBoxPredictor


def mmdet_get_bboxes_scores(logits_bg_last: torch.Tensor) -> torch.Tensor:
    """mmdet 2.21 ``BBoxHead.get_bboxes`` (no ``custom_activation``): softmax over all columns, bg dropped."""
    return torch.nn.functional.softmax(logits_bg_last, dim=-1)[:, :-1]


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 12), k=st.integers(1, 9), scale=st.floats(0.1, 30.0), seed=st.integers(0, 2**16))
def test_softmax_scoring_equals_mmdetection_get_bboxes(rows: int, k: int, scale: float, seed: int) -> None:
    logits = torch.randn(rows, k + 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
    loss = CrossEntropyLoss(activation=Sigmoid(scoring="softmax"), num_classes=k)
    ours = loss.scores(logits)  # gol: background at column 0
    theirs = mmdet_get_bboxes_scores(torch.cat([logits[:, 1:], logits[:, :1]], dim=1))  # mmdet: background last
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-15)


def test_softmax_scoring_differs_from_own_sigmoid_scoring() -> None:
    logits = torch.tensor([[0.0, 3.0, 2.5, -1.0]])
    own = CrossEntropyLoss(activation=Sigmoid(), num_classes=3).scores(logits)
    soft = CrossEntropyLoss(activation=Sigmoid(scoring="softmax"), num_classes=3).scores(logits)
    torch.testing.assert_close(own, torch.sigmoid(logits[:, 1:]))
    assert (soft.sum(dim=1) < 1).all() and not torch.allclose(own, soft)


def test_softmax_scoring_of_the_softmax_activation_is_its_own() -> None:
    logits = torch.randn(5, 4)
    own = CrossEntropyLoss(activation=Softmax(), num_classes=3).scores(logits)
    soft = CrossEntropyLoss(activation=Softmax(scoring="softmax"), num_classes=3).scores(logits)
    torch.testing.assert_close(own, soft)


@pytest.mark.parametrize("loss_type", [EQLLoss, DropLoss, FederatedLoss])
def test_softmax_scoring_needs_a_background_column(loss_type: type, make_stats: Callable[..., object]) -> None:
    with pytest.raises(InvalidPairError, match="activation.scoring=softmax .* use activation.scoring=own"):
        loss_type(activation=Sigmoid(scoring="softmax"), num_classes=3, stats=make_stats([5, 50, 500]))


def test_bad_scoring_and_init_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"activation.scoring='max' is unknown; use one of own, softmax"):
        Gumbel(scoring="max")
    with pytest.raises(ValueError, match=r"activation.init='xavier' is unknown; use one of constant, normal"):
        Gumbel(init="xavier")


def test_constant_and_normal_init() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(256, 1000)
    Gumbel().init_classifier(layer)
    assert (layer.weight == 0.001).all() and (layer.bias == -2.0).all()
    Sigmoid(init="normal", init_weight=0.01, init_bias=0.0).init_classifier(layer)
    assert (layer.bias == 0).all()
    assert abs(float(layer.weight.detach().mean())) < 1e-3 and abs(float(layer.weight.detach().std()) - 0.01) < 2e-4


def test_normed_classifier_starts_as_mmdetection_normed_linear_whatever_the_activation_init() -> None:
    torch.manual_seed(0)
    loss = CrossEntropyLoss(activation=Softmax(), num_classes=400)  # constant 0.001 / -6.5 for a plain Linear
    predictor = GolBoxPredictor(256, cls_loss=loss, classifier_temperature=20.0)
    weight, bias = predictor.cls_score.weight, predictor.cls_score.bias
    assert (bias == 0).all()
    assert abs(float(weight.detach().std()) - 0.01) < 2e-4
    # the class weight vectors differ (a constant init made them identical, so all classes scored alike)
    assert torch.unique(weight[:, 0]).numel() > 300
    plain = GolBoxPredictor(256, cls_loss=loss)
    assert (plain.cls_score.weight == 0.001).all() and (plain.cls_score.bias == -6.5).all()
