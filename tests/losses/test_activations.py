"""Activations: probabilities in [0, 1] and monotone, stable log-probabilities, gradients, scores, init."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gol.activations import (
    ACTIVATIONS,
    Activation,
    Gumbel,
    Probit,
    Sigmoid,
    Softmax,
    get_activation,
    gumbel_log_survival,
    probit_log_prob,
)

BINARY = ("sigmoid", "gumbel", "probit", "aglu")
finite32 = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(finite32, min_size=1, max_size=64), name=st.sampled_from(BINARY))
def test_binary_prob_in_unit_interval_and_monotone(values: list[float], name: str) -> None:
    q = torch.tensor(sorted(values), dtype=torch.float32)
    act = get_activation(name)
    p = act.prob(q)
    assert ((p >= 0) & (p <= 1)).all()
    assert (p[1:] >= p[:-1]).all()
    # log(1 - p) never -inf or NaN for finite logits in the stable forms (Gumbel log p may be -inf: exact)
    assert torch.isfinite(act.log_survival(q)).all() or name == "sigmoid"
    assert not torch.isnan(act.log_prob(q)).any()


@settings(max_examples=30, deadline=None)
@given(values=st.lists(finite32, min_size=2, max_size=16))
def test_softmax_prob_is_a_distribution(values: list[float]) -> None:
    p = Softmax().prob(torch.tensor([values]))
    assert ((p >= 0) & (p <= 1)).all()
    assert torch.allclose(p.sum(), torch.tensor(1.0), atol=1e-5)


@pytest.mark.parametrize("name", BINARY)
def test_log_forms_match_naive_forms_in_the_body(name: str) -> None:
    q = torch.linspace(-3.0, 6.0, 101, dtype=torch.float64)
    act = get_activation(name)
    p = act.prob(q)
    torch.testing.assert_close(act.log_prob(q), torch.log(p))
    torch.testing.assert_close(act.log_survival(q), torch.log1p(-p))


def test_gumbel_closed_forms() -> None:
    q = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(Gumbel().prob(q), torch.exp(-torch.exp(-q)))
    torch.testing.assert_close(Gumbel().log_prob(q), -torch.exp(-q))
    assert math.isclose(Gumbel().prob(torch.tensor(0.0)).item(), math.exp(-1.0), rel_tol=1e-6)


def test_stable_tails_float32() -> None:
    q = torch.tensor([-1e4, -100.0, 100.0, 1e4], requires_grad=True)
    # log(1 - eta(q)) -> -q for large q, -> 0 for very negative q; gradient eq. 3 (negated) stays finite
    out = gumbel_log_survival(q)
    torch.testing.assert_close(out.detach(), torch.tensor([0.0, 0.0, -100.0, -1e4]))
    (g,) = torch.autograd.grad(out.sum(), q)
    torch.testing.assert_close(g, torch.tensor([0.0, 0.0, -1.0, -1.0]))
    # d log Phi / dq ~ -q in the left tail (torch's own log_ndtr backward is far off there)
    q2 = torch.tensor([-1e4, -50.0, 50.0], requires_grad=True)
    (g2,) = torch.autograd.grad(probit_log_prob(q2).sum(), q2)
    mills = [-x / (1 - 1 / x**2 + 3 / x**4) for x in (-1e4, -50.0)]  # asymptotic phi/Phi, error O(q^-6)
    torch.testing.assert_close(g2, torch.tensor([*mills, 0.0]), rtol=1e-6, atol=0)
    assert torch.isfinite(probit_log_prob(q2)).all()


@pytest.mark.parametrize(
    ("fn", "low", "high"),
    [
        (lambda a: a.log_prob, -5.0, 30.0),
        (lambda a: a.log_survival, -30.0, 90.0),
        (lambda a: a.prob, -5.0, 30.0),
    ],
)
@pytest.mark.parametrize("name", BINARY)
def test_gradcheck_float64(name: str, fn, low: float, high: float) -> None:
    q = torch.linspace(low, high, 23, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(fn(get_activation(name)), (q,))


def test_softmax_gradcheck_float64() -> None:
    q = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(Softmax().log_prob, (q,))


def test_scores_layouts() -> None:
    logits = torch.randn(4, 6)
    torch.testing.assert_close(Gumbel().scores(logits, background=True), torch.exp(-torch.exp(-logits[:, 1:])))
    torch.testing.assert_close(Sigmoid().scores(logits, background=False), torch.sigmoid(logits))
    torch.testing.assert_close(Softmax().scores(logits, background=True), torch.softmax(logits, 1)[:, 1:])
    with pytest.raises(ValueError, match="background column"):
        Softmax().scores(logits, background=False)


@pytest.mark.parametrize(("cls", "bias"), [(Sigmoid, -6.5), (Softmax, -6.5), (Gumbel, -2.0), (Probit, -3.45)])
def test_init_classifier_official_constants(cls: type[Activation], bias: float) -> None:
    layer = nn.Linear(8, 5)
    cls().init_classifier(layer)
    assert (layer.weight == 0.001).all()
    assert (layer.bias == bias).all()
    custom = cls(init_weight=0.01, init_bias=-6.9)
    custom.init_classifier(layer)
    assert (layer.weight == 0.01).all() and (layer.bias == -6.9).all()
    with pytest.raises(TypeError, match="weight and a bias"):
        cls().init_classifier(nn.Linear(8, 5, bias=False))


def test_autocast_bfloat16_inputs_computed_in_float32() -> None:
    layer = nn.Linear(4, 6)
    x = torch.randn(3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(x)
        assert logits.dtype == torch.bfloat16
        for name in ACTIVATIONS:
            act = get_activation(name)
            p = act.prob(logits)
            assert p.dtype == torch.float32 and torch.isfinite(p).all()
            if act.is_binary:
                assert torch.isfinite(act.log_survival(logits)).all()


def test_registry_and_equality() -> None:
    assert set(ACTIVATIONS) == {"sigmoid", "softmax", "gumbel", "probit", "aglu"}
    assert get_activation("gumbel") == Gumbel()
    assert Gumbel() != Gumbel(init_bias=-3.0)
    assert Gumbel() != Sigmoid()
    with pytest.raises(ValueError, match="unknown activation"):
        get_activation("tanh")
    with pytest.raises(ValueError, match="init_bias"):
        Gumbel(init_bias=float("nan"))
    with pytest.raises(ValueError, match="floating-point"):
        Gumbel().prob(torch.tensor([1, 2]))
