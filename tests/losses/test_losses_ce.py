"""CrossEntropyLoss: torchvision / BCE-with-logits equivalences, official transcriptions, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import fastrcnn_loss

from gol.activations import Gumbel, Probit, Sigmoid, Softmax, get_activation
from gol.losses import CrossEntropyLoss, InvalidPairError

K = 7


def _torchvision_cls_term(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r = logits.shape[0]
    cls_loss, _ = fastrcnn_loss(logits, torch.zeros(r, (K + 1) * 4), [labels], [torch.zeros(r, 4)])
    return cls_loss


def test_softmax_ce_equals_torchvision_fastrcnn_loss(make_batch) -> None:
    logits, labels = make_batch(40, K, width=K + 1, seed=1)
    ours_in = logits.clone().requires_grad_(True)
    tv_in = logits.clone().requires_grad_(True)
    ours = CrossEntropyLoss(activation=Softmax(), num_classes=K)(ours_in, labels)
    ref = _torchvision_cls_term(tv_in, labels)
    ours.backward()
    ref.backward()
    assert torch.equal(ours.detach(), ref.detach())
    assert torch.equal(ours_in.grad, tv_in.grad)


@pytest.mark.parametrize("background_column", [True, False])
def test_sigmoid_ce_equals_bce_with_logits(make_batch, one_hot, background_column: bool) -> None:
    width = K + 1 if background_column else K
    logits, labels = make_batch(30, K, width=width, seed=2)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    loss = CrossEntropyLoss(activation=Sigmoid(), num_classes=K, background_column=background_column)
    ours = loss(a, labels)
    target = one_hot(labels, K, background_column=background_column)
    ref = F.binary_cross_entropy_with_logits(b, target, reduction="sum") / logits.shape[0]
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(a.grad, b.grad)


def _official_gumbel_ce(q: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """paper-notes 3.3 pseudo-code (GumbelCE): clamp logits, BCE on eta, sum / N, clamp the scalar."""
    q = torch.clamp(q, -4, 10)
    p = torch.exp(-torch.exp(-q))
    target = F.one_hot(labels, q.shape[1]).float()
    loss = F.binary_cross_entropy(p, target, reduction="none").sum() / q.shape[0]
    return torch.clamp(loss, 0, 20)


def _official_probit_bce(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The official 'normal' branch: clamp to [-5, 5], p = 1/2 + erf(q / sqrt 2) / 2, BCE on p."""
    p = 1 / 2 + torch.erf(torch.clamp(q, -5, 5) / 2**0.5) / 2
    return F.binary_cross_entropy(p, target, reduction="none").sum() / q.shape[0]


@pytest.mark.parametrize(("scale", "shift"), [(3.0, -1.0), (8.0, -3.0), (0.5, -30.0)])
def test_official_gumbel_ce_equals_transcription(make_batch, scale: float, shift: float) -> None:
    logits, labels = make_batch(25, K, width=K + 1, seed=3, scale=scale, shift=shift)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    ours = CrossEntropyLoss(activation=Gumbel(), num_classes=K, numerics="official")(a, labels)
    ref = _official_gumbel_ce(b, labels)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)
    if ref.item() >= 20:  # the scalar clamp silences the batch (shift -30: every positive far below)
        assert (a.grad == 0).all()


def test_official_probit_equals_transcription(make_batch, one_hot) -> None:
    logits, labels = make_batch(25, K, width=K + 1, seed=4, scale=4.0)
    ours = CrossEntropyLoss(activation=Probit(), num_classes=K, numerics="official")(logits, labels)
    ref = _official_probit_bce(logits, one_hot(labels, K, background_column=True))
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


# Gumbel from -3.3: below it eta < 1e-12 and torch's BCE backward (official mode) floors p (1 - p) at 1e-12.
@pytest.mark.parametrize(("name", "low", "high"), [("gumbel", -3.3, 9.9), ("probit", -4.9, 4.9), ("sigmoid", -20, 20)])
def test_stable_equals_official_where_no_clamp_is_active(make_batch, name: str, low: float, high: float) -> None:
    logits, labels = make_batch(30, K, width=K + 1, seed=5, scale=3.0, shift=0.0)
    logits = logits.clamp(low, high).double()
    grads = []
    values = []
    for numerics in ("stable", "official"):
        x = logits.clone().requires_grad_(True)
        loss = CrossEntropyLoss(activation=get_activation(name), num_classes=K, numerics=numerics)(x, labels)
        assert name != "gumbel" or loss.item() < 20  # the GumbelCE scalar clamp is inactive too
        loss.backward()
        values.append(loss.detach())
        grads.append(x.grad)
    torch.testing.assert_close(values[0], values[1], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-7, atol=1e-9)


def test_official_gumbel_positive_gradient_vanishes_below_bce_floor() -> None:
    labels = torch.tensor([1])
    grads = {}
    for numerics in ("stable", "official"):
        x = torch.full((1, K + 1), -3.9, dtype=torch.float64, requires_grad=True)
        CrossEntropyLoss(activation=Gumbel(), num_classes=K, numerics=numerics)(x, labels).backward()
        grads[numerics] = x.grad[0, 1].item()
    assert math.isclose(grads["stable"], -math.exp(3.9), rel_tol=1e-12)  # paper eq. 3: -exp(-q)
    assert abs(grads["official"]) < 1e-6


@pytest.mark.parametrize(
    ("name", "background_column"),
    [("softmax", True), ("sigmoid", True), ("gumbel", True), ("probit", True), ("gumbel", False), ("probit", False)],
)
def test_gradcheck_float64(make_batch, name: str, background_column: bool) -> None:
    width = K + 1 if background_column else K
    logits, labels = make_batch(6, K, width=width, seed=6, dtype=torch.float64)
    loss = CrossEntropyLoss(activation=get_activation(name), num_classes=K, background_column=background_column)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits.requires_grad_(True),))


def test_scores_and_layout() -> None:
    logits = torch.randn(5, K + 1)
    soft = CrossEntropyLoss(activation=Softmax(), num_classes=K)
    assert soft.num_logits == K + 1
    torch.testing.assert_close(soft.scores(logits), torch.softmax(logits, 1)[:, 1:])
    gum = CrossEntropyLoss(activation=Gumbel(), num_classes=K, background_column=False)
    assert gum.num_logits == K
    torch.testing.assert_close(gum.scores(logits[:, 1:]), torch.exp(-torch.exp(-logits[:, 1:])))


def test_bad_input_errors(make_stats) -> None:
    loss = CrossEntropyLoss(activation=Gumbel(), num_classes=K)
    with pytest.raises(ValueError, match=r"logits must have shape \(R, 8\)"):
        loss(torch.randn(3, K), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 7\]"):
        loss(torch.randn(3, K + 1), torch.tensor([0, 8, 1]))
    with pytest.raises(ValueError, match="labels must be an integer"):
        loss(torch.randn(3, K + 1), torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="labels must have shape"):
        loss(torch.randn(3, K + 1), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="background_column=False needs a binary"):
        CrossEntropyLoss(activation=Softmax(), num_classes=K, background_column=False)
    with pytest.raises(ValueError, match="stats has 3 categories"):
        CrossEntropyLoss(activation=Softmax(), num_classes=K, stats=make_stats([1, 2, 3]))
    with pytest.raises(ValueError, match="num_classes"):
        CrossEntropyLoss(activation=Softmax(), num_classes=0)
    with pytest.raises(ValueError, match="numerics"):
        CrossEntropyLoss(activation=Gumbel(), num_classes=K, numerics="fast")
    assert issubclass(InvalidPairError, ValueError)


def test_zero_rois_give_zero_loss_with_gradient() -> None:
    for act in (Softmax(), Gumbel()):
        x = torch.zeros(0, K + 1, requires_grad=True)
        loss = CrossEntropyLoss(activation=act, num_classes=K)(x, torch.zeros(0, dtype=torch.long))
        loss.backward()
        assert loss.item() == 0.0 and x.grad is not None and x.grad.shape == (0, K + 1)
    assert not math.isnan(loss.item())
