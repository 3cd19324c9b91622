"""Properties every valid (loss, activation) pair must have: finite at the extremes, non-negative, invariant to
RoI order, zero RoIs handled, bfloat16 autocast, and the analytic Gumbel gradient (GOL paper eq. 3)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gol.activations import Gumbel, get_activation
from gol.activations.gumbel_fused import GUMBEL_LINEAR_BELOW
from gol.losses import (
    LOSSES,
    VALID_PAIRS,
    ClassificationLoss,
    CrossEntropyLoss,
    drop_loss,
    eql_loss,
    federated_loss,
    tail_classes,
)

K = 4
COUNTS = [2, 30, 5, 400]
PAIRS = [(loss, act) for loss, acts in VALID_PAIRS.items() for act in acts]


def _build(make_stats, loss: str, act: str, numerics: str = "stable") -> ClassificationLoss:
    cls = LOSSES[loss]
    kwargs = {} if loss == "seesaw" else {"numerics": numerics}
    return cls(activation=get_activation(act), num_classes=K, stats=make_stats(COUNTS, 10_000), **kwargs)


@pytest.mark.parametrize("numerics", ["stable", "official"])
@pytest.mark.parametrize(("loss", "act"), PAIRS)
def test_finite_loss_and_gradient_at_extreme_logits(make_stats, loss: str, act: str, numerics: str) -> None:
    module = _build(make_stats, loss, act, numerics)
    g = torch.Generator().manual_seed(0)
    rows = 64
    logits = (torch.rand(rows, module.num_logits, generator=g) * 2 - 1) * 1e4
    logits[:8] = torch.tensor([-1e4, 1e4, 0.0, -1e4, 1e4, -88.0, 88.0, -1e-3])[:, None]  # saturate whole rows
    labels = torch.randint(0, K + 1, (rows,), generator=g)
    x = logits.requires_grad_(True)
    value = module(x, labels)
    value.backward()
    assert torch.isfinite(value) and value.item() >= 0
    assert torch.isfinite(x.grad).all()


@settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    rows=st.integers(min_value=1, max_value=8),
    scale=st.sampled_from([1.0, 10.0, 1e3, 1e4]),
)
def test_hypothesis_finite_and_nonnegative(make_stats, data, rows: int, scale: float) -> None:
    seed = data.draw(st.integers(min_value=0, max_value=2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K + 1, (rows,), generator=g)
    for loss, act in PAIRS:
        module = _build(make_stats, loss, act)
        x = (torch.randn(rows, module.num_logits, generator=g) * scale).requires_grad_(True)
        value = module(x, labels)
        value.backward()
        assert torch.isfinite(value) and value.item() >= 0, (loss, act)
        assert torch.isfinite(x.grad).all(), (loss, act)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**31 - 1), rows=st.integers(min_value=2, max_value=12))
def test_hypothesis_invariant_to_roi_order(make_stats, seed: int, rows: int) -> None:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K + 1, (rows,), generator=g)
    perm = torch.randperm(rows, generator=g)
    tail = tail_classes(make_stats(COUNTS, 10_000).image_frequency, 0.0011)
    classes = torch.rand(K, generator=g) < 0.5
    classes[labels[labels > 0] - 1] = True
    for act in ("sigmoid", "gumbel", "probit"):
        a = get_activation(act)
        x = torch.randn(rows, K, generator=g, dtype=torch.float64) * 4
        u = torch.rand(rows, K, generator=g)
        fns = [
            lambda x, y, u, a=a: eql_loss(x, y, activation=a, tail=tail),
            lambda x, y, u, a=a: drop_loss(x, y, activation=a, tail=tail, uniform=u),
            lambda x, y, u, a=a: federated_loss(x, y, activation=a, classes=classes),
            lambda x, y, u, a=a: CrossEntropyLoss(activation=a, num_classes=K, background_column=False)(x, y),
        ]
        for fn in fns:
            torch.testing.assert_close(fn(x, labels, u), fn(x[perm], labels[perm], u[perm]))
    for loss in ("ce", "seesaw"):
        module = _build(make_stats, loss, "softmax").eval()
        x = torch.randn(rows, module.num_logits, generator=g, dtype=torch.float64)
        torch.testing.assert_close(module(x, labels), module(x[perm], labels[perm]))


@pytest.mark.parametrize(("loss", "act"), PAIRS)
def test_zero_rois(make_stats, loss: str, act: str) -> None:
    module = _build(make_stats, loss, act)
    x = torch.zeros(0, module.num_logits, requires_grad=True)
    value = module(x, torch.zeros(0, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0 and not math.isnan(value.item())
    assert x.grad is not None and x.grad.shape == (0, module.num_logits)
    assert module.scores(x.detach()).shape == (0, K)


@pytest.mark.parametrize(("loss", "act"), PAIRS)
def test_bfloat16_autocast(make_stats, loss: str, act: str) -> None:
    module = _build(make_stats, loss, act)
    layer = nn.Linear(16, module.num_logits)
    module.init_classifier(layer)
    nn.init.normal_(layer.weight, std=2.0)
    features = torch.randn(32, 16, generator=torch.Generator().manual_seed(1)) * 50
    labels = torch.randint(0, K + 1, (32,), generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(features)
        assert logits.dtype == torch.bfloat16
        value = module(logits, labels)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(layer.weight.grad).all() and torch.isfinite(layer.bias.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stable_gumbel_gradient_is_paper_eq3(dtype: torch.dtype) -> None:
    q = torch.linspace(GUMBEL_LINEAR_BELOW, 60.0, 1401, dtype=torch.float64)
    n = q.numel()
    loss = CrossEntropyLoss(activation=Gumbel(), num_classes=1, background_column=False)
    for label, analytic in (
        (1, -torch.exp(-q)),  # y = 1: -exp(-q)
        (0, torch.exp(-q) / torch.expm1(torch.exp(-q))),  # y = 0: exp(-q) / (exp(exp(-q)) - 1)
    ):
        x = q.to(dtype).unsqueeze(1).requires_grad_(True)
        loss(x, torch.full((n,), label)).backward()
        got = x.grad.squeeze(1).double() * n  # undo the mean over RoIs
        # float32: the rounding of q itself dominates; saturated negatives (q < -4.45) give < 1e-34, not 0
        rtol, atol = (1e-12, 1e-300) if dtype == torch.float64 else (2e-5, 1e-34)
        torch.testing.assert_close(got, analytic, rtol=rtol, atol=atol)


def test_stable_gumbel_positive_below_knee_is_tangent() -> None:
    loss = CrossEntropyLoss(activation=Gumbel(), num_classes=1, background_column=False)
    x = torch.tensor([[-1e4], [-50.0]], dtype=torch.float64, requires_grad=True)
    value = loss(x, torch.tensor([1, 1]))
    value.backward()
    e10 = math.exp(10.0)
    assert value.item() == pytest.approx((e10 * (1 + 9990) + e10 * (1 + 40)) / 2, rel=1e-12)
    torch.testing.assert_close(x.grad, torch.full((2, 1), -e10 / 2, dtype=torch.float64))


@pytest.mark.parametrize("act", ["sigmoid", "gumbel", "probit"])
def test_non_contiguous_logits(make_stats, act: str) -> None:
    module = _build(make_stats, "eql", act)
    base = torch.randn(K + 3, 10, generator=torch.Generator().manual_seed(3))
    view = base.t()[:, 1 : K + 1]  # (10, K), non-contiguous
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    a, b = view.clone().requires_grad_(True), view.detach().requires_grad_(True)
    assert not b.is_contiguous()
    module(a, labels).backward()
    module(b, labels).backward()
    torch.testing.assert_close(a.grad, b.grad)
