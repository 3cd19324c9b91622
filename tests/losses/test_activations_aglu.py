"""The learnable APA activation (``activation=aglu``): the official module transcribed, its stable log forms, its
special cases (sigmoid, Gumbel), gradients in the logits and in lambda / kappa, and the parameters' life in a model
(registered once, trained, checkpointed, shared by cascade stages, refused out of range)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gol.activations import (
    AGLU,
    APAParameters,
    Gumbel,
    Sigmoid,
    activation_scalars,
    apa_log_prob,
    apa_log_survival,
    apa_prob,
)
from gol.config.schedule import ScheduleConf
from gol.losses import (
    VALID_PAIRS,
    CrossEntropyLoss,
    DropLoss,
    EQLLoss,
    EQLv2Loss,
    FederatedLoss,
    InvalidPairError,
    check_pair,
)
from gol.models.cascade import stage_losses
from gol.optim import build_optimizer


class OfficialUnified(nn.Module):
    """Transcription of ``Unified`` in kostas1515/AGLU ``mmdetection_v3.2/mmdet/models/backbones/se_resnet.py``
    (the same module as the README's and ``classification/resnet_pytorch.py``), with its uniform init replaced by
    given values so that it can be compared with gol's."""

    def __init__(self, lambda_init: float, kappa_init: float, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.softplus = nn.Softplus(beta=-1.0)
        self.lambda_param = nn.Parameter(torch.tensor([lambda_init], dtype=dtype))
        self.kappa_param = nn.Parameter(torch.tensor([kappa_init], dtype=dtype))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        l = torch.clamp(self.lambda_param, min=0.0001)  # noqa: E741 (the official name)
        p = torch.exp((1 / l) * self.softplus((self.kappa_param * input) - torch.log(l)))
        return p


def _aglu(lam: float, kappa: float, *, dtype: torch.dtype = torch.float64, **kwargs: float) -> AGLU:
    act = AGLU(init_lambda=lam, init_kappa=kappa, **kwargs)
    act.module.to(dtype)
    return act


def _targets(rows: int, cols: int, seed: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    positive = torch.randint(-1, cols, (rows,), generator=g)  # -1: no positive column (background RoI)
    target = torch.zeros(rows, cols, dtype=dtype)
    target[positive >= 0, positive[positive >= 0]] = 1.0
    return positive, target


# ---------------------------------------------------------------------------------------------------------------
# Against the official module
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_values_and_gradients_equal_the_official_module(seed: int) -> None:
    """p, BCE and the gradients in the logits, lambda and kappa equal the official module's on random inputs."""
    g = torch.Generator().manual_seed(seed)
    lam = float(torch.rand((), generator=g)) * 1.5 + 0.05  # official init draws lambda from U(0, 1)
    kappa = float(torch.rand((), generator=g)) * 1.5 + 0.2
    lam, kappa = (float(torch.tensor(v, dtype=torch.float32)) for v in (lam, kappa))  # as gol's parameters hold them
    q = (torch.randn(32, 9, generator=g, dtype=torch.float64) * 3.0).requires_grad_()
    _, target = _targets(32, 9, seed)
    official = OfficialUnified(lam, kappa)
    q_ref = q.detach().clone().requires_grad_()
    p_ref = official(q_ref)
    loss_ref = F.binary_cross_entropy(p_ref, target, reduction="sum")
    loss_ref.backward()

    ours = _aglu(lam, kappa)
    torch.testing.assert_close(ours.prob(q), p_ref, rtol=1e-12, atol=1e-14)
    for numerics in ("stable", "official"):
        q.grad = None
        ours.module.zero_grad()
        loss = ours.binary_cross_entropy(q, target, numerics=numerics).sum()
        loss.backward()
        torch.testing.assert_close(loss, loss_ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(q.grad, q_ref.grad, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(ours.module.lambda_param.grad, official.lambda_param.grad[0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(ours.module.kappa_param.grad, official.kappa_param.grad[0], rtol=1e-9, atol=1e-12)


def test_lambda_clamp_is_the_official_one() -> None:
    """Below 1e-4 lambda is clamped (value as the official module, zero gradient in lambda)."""
    q = torch.linspace(-3, 5, 17, dtype=torch.float64)
    ours, official = _aglu(1.0, 0.7), OfficialUnified(-0.3, 0.7)
    with torch.no_grad():
        ours.module.lambda_param.fill_(-0.3)
    torch.testing.assert_close(ours.prob(q), official(q))
    ours.log_prob(q).sum().backward()
    assert float(ours.module.lambda_param.grad) == 0.0
    assert activation_scalars(nn.ModuleList([ours.module]))["aglu_lambda"] == 1e-4


# ---------------------------------------------------------------------------------------------------------------
# Special cases
# ---------------------------------------------------------------------------------------------------------------
def test_lambda_one_kappa_one_is_the_sigmoid() -> None:
    q = torch.cat([torch.linspace(-60, 60, 241), torch.tensor([-1e4, 1e4])]).double()
    ours, sigmoid = _aglu(1.0, 1.0), Sigmoid()
    torch.testing.assert_close(ours.prob(q), sigmoid.prob(q), rtol=1e-13, atol=1e-300)
    torch.testing.assert_close(ours.log_prob(q), sigmoid.log_prob(q), rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(ours.log_survival(q), sigmoid.log_survival(q), rtol=1e-13, atol=1e-15)
    _, target = _targets(8, 5, 0)
    logits = torch.randn(8, 5, dtype=torch.float64) * 4
    torch.testing.assert_close(
        ours.binary_cross_entropy(logits, target, numerics="stable"),
        sigmoid.binary_cross_entropy(logits, target, numerics="stable"),
    )


@pytest.mark.parametrize("kappa", [1.0, 0.5, 2.0])
def test_lambda_to_zero_is_the_gumbel(kappa: float) -> None:
    """lambda -> 0 gives exp(-exp(-kappa q)): log p = -log(1 + lambda t) / lambda = -t + lambda t^2 / 2 - ...
    (t = e^{-kappa q}), so the difference from Gumbel is below lambda t^2 / 2 and shrinks with lambda."""
    q = torch.linspace(-3, 30, 331, dtype=torch.float64)
    t = torch.exp(-kappa * q)
    gumbel = Gumbel()
    errors = []
    for lam in (1e-6, 1e-9, 1e-12):
        ours = _aglu(lam, kappa, lambda_min=lam)
        error = (ours.log_prob(q) - gumbel.log_prob(kappa * q)).detach().abs()
        assert (error <= lam * t * t / 2 * 1.001 + 1e-15).all()
        errors.append(float(error.max()))
    assert errors[0] > errors[1] > errors[2], errors
    ours = _aglu(1e-12, kappa, lambda_min=1e-12)
    torch.testing.assert_close(ours.prob(q), gumbel.prob(kappa * q), rtol=1e-7, atol=1e-300)
    torch.testing.assert_close(ours.log_survival(q), gumbel.log_survival(kappa * q), rtol=1e-7, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Stability, properties, gradcheck
# ---------------------------------------------------------------------------------------------------------------
finite32 = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=32)
lambdas = st.floats(min_value=1.1e-4, max_value=20.0)
kappas = st.floats(min_value=0.05, max_value=5.0)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(finite32, min_size=1, max_size=64), lam=lambdas, kappa=kappas)
def test_prob_in_unit_interval_monotone_and_logs_finite(values: list[float], lam: float, kappa: float) -> None:
    q = torch.tensor(sorted(values), dtype=torch.float32, requires_grad=True)
    act = _aglu(lam, kappa, dtype=torch.float32)
    p = act.prob(q)
    assert ((p >= 0) & (p <= 1)).all() and (p[1:] >= p[:-1]).all()
    log_p, log_s = act.log_prob(q), act.log_survival(q)
    assert torch.isfinite(log_p).all() and torch.isfinite(log_s).all()
    assert (log_p <= 0).all() and (log_s <= 0).all()
    (log_p.sum() + log_s.sum()).backward()
    assert torch.isfinite(q.grad).all()
    assert torch.isfinite(act.module.lambda_param.grad) and torch.isfinite(act.module.kappa_param.grad)


@settings(max_examples=40, deadline=None)
@given(q=st.floats(min_value=-8.0, max_value=30.0), lam=lambdas, kappa=kappas)
def test_log_forms_equal_the_naive_ones_where_those_are_accurate(q: float, lam: float, kappa: float) -> None:
    x = torch.tensor([q], dtype=torch.float64)
    lam, kappa = (float(torch.tensor(v, dtype=torch.float32)) for v in (lam, kappa))  # as the parameters hold them
    log_p = -math.log1p(lam * math.exp(-kappa * q)) / lam
    p = math.exp(log_p)
    act = _aglu(lam, kappa)
    torch.testing.assert_close(act.log_prob(x), torch.tensor([log_p], dtype=torch.float64), rtol=1e-12, atol=1e-15)
    if p < 0.5:  # log1p(-p) is accurate there
        torch.testing.assert_close(act.log_survival(x), torch.log1p(-torch.tensor([p], dtype=torch.float64)))
    else:  # 1 - p = 1 - exp(log p) without cancellation
        expected = torch.log(-torch.expm1(act.log_prob(x)))
        torch.testing.assert_close(act.log_survival(x), expected, rtol=1e-9, atol=1e-300)


def test_tails_are_the_limits() -> None:
    """Far right: log(1 - p) = -kappa q (slope -kappa); far left: log p = -(log lambda - kappa q) / lambda."""
    lam, kappa = 0.3, 1.7
    for dtype in (torch.float32, torch.float64):
        act = _aglu(lam, kappa, dtype=dtype)
        right = torch.tensor([200.0, 1e4], dtype=dtype, requires_grad=True)
        torch.testing.assert_close(act.log_survival(right), -kappa * right.detach(), rtol=1e-6, atol=0.0)
        act.log_survival(right).sum().backward()
        torch.testing.assert_close(right.grad, torch.full_like(right, -kappa))
        left = torch.tensor([-200.0, -1e4], dtype=dtype)
        torch.testing.assert_close(act.log_prob(left), -(math.log(lam) - kappa * left) / lam, rtol=1e-6, atol=0.0)
        assert (act.log_survival(left) == 0).all()


@pytest.mark.parametrize("lam,kappa", [(1.0, 1.0), (0.3, 1.7), (2.5, 0.6), (0.01, 1.0)])
def test_gradcheck_float64_logits_lambda_kappa(lam: float, kappa: float) -> None:
    g = torch.Generator().manual_seed(3)
    # logits across every branch: the series (large q), the direct form, and the far-left tail
    q = torch.cat([torch.randn(20, generator=g, dtype=torch.float64) * 4, torch.tensor([-50.0, 12.0, 30.0, 80.0])])
    q.requires_grad_()
    lam_t = torch.tensor(lam, dtype=torch.float64, requires_grad=True)
    kappa_t = torch.tensor(kappa, dtype=torch.float64, requires_grad=True)
    for fn in (apa_log_prob, apa_log_survival, apa_prob):
        assert torch.autograd.gradcheck(fn, (q, lam_t, kappa_t), eps=1e-7, atol=1e-7, rtol=1e-5)


def test_bce_sum_gradcheck_through_the_activation() -> None:
    act = _aglu(0.4, 1.3)
    positive, _ = _targets(6, 4, 1)
    logits = (torch.randn(6, 4, dtype=torch.float64) * 3).requires_grad_()
    lam, kappa = act.module.lambda_param, act.module.kappa_param

    def bce(q: torch.Tensor) -> torch.Tensor:
        return act.binary_cross_entropy_sum(q, positive, drop=None, numerics="stable")

    assert torch.autograd.gradcheck(bce, (logits,))
    # in the parameters: autograd against central differences
    value = act.binary_cross_entropy_sum(logits, positive, drop=None, numerics="stable")
    grads = torch.autograd.grad(value, (lam, kappa))
    for param, grad in zip((lam, kappa), grads, strict=True):
        with torch.no_grad():
            param += 1e-6
            up = act.binary_cross_entropy_sum(logits, positive, drop=None, numerics="stable")
            param -= 2e-6
            down = act.binary_cross_entropy_sum(logits, positive, drop=None, numerics="stable")
            param += 1e-6
        torch.testing.assert_close(grad, (up - down) / 2e-6, rtol=1e-6, atol=1e-8)


def test_half_precision_logits_are_upcast() -> None:
    act = AGLU(init_lambda=0.5)
    q = torch.tensor([-3.0, 0.0, 4.0], dtype=torch.bfloat16)
    assert act.prob(q).dtype == torch.float32 and act.log_survival(q).dtype == torch.float32


# ---------------------------------------------------------------------------------------------------------------
# Inside every binary loss
# ---------------------------------------------------------------------------------------------------------------
def test_aglu_is_a_binary_activation_of_every_binary_loss_and_refused_by_softmax_only_losses() -> None:
    assert all("aglu" in VALID_PAIRS[loss] for loss in ("ce", "eql", "federated", "droploss"))
    with pytest.raises(InvalidPairError, match="activation=aglu cannot be used with loss=seesaw"):
        check_pair("aglu", "seesaw")


@pytest.mark.parametrize("loss_cls", [CrossEntropyLoss, EQLLoss, FederatedLoss, DropLoss])
def test_every_binary_loss_trains_lambda_and_kappa(loss_cls: type, make_stats, make_batch) -> None:
    stats = make_stats([1, 3, 50, 400, 900, 2, 7])
    act = AGLU(init_lambda=0.5, init_kappa=1.0)
    loss = loss_cls(activation=act, num_classes=7, stats=stats)
    assert loss.activation_params is act.module
    assert {n for n, _ in loss.named_parameters()} == {
        "activation_params.lambda_param",
        "activation_params.kappa_param",
    }
    logits, labels = make_batch(64, 7, width=loss.num_logits)
    value = loss(logits.requires_grad_(), labels)
    value.backward()
    assert torch.isfinite(value) and act.module.lambda_param.grad != 0 and act.module.kappa_param.grad != 0
    for numerics in ("stable", "official"):
        other = loss_cls(activation=AGLU(init_lambda=0.5), num_classes=7, stats=stats, numerics=numerics)
        assert torch.isfinite(other(logits.detach(), labels))


@pytest.mark.parametrize("loss_cls", [CrossEntropyLoss, DropLoss, EQLv2Loss])
def test_a_batch_without_rois_keeps_lambda_and_kappa_in_the_graph(loss_cls: type, make_stats) -> None:
    """DistributedDataParallel expects every parameter in every step's graph: 0 with zero gradients, not None."""
    act = AGLU(init_lambda=0.5)
    loss = loss_cls(activation=act, num_classes=7, stats=make_stats([1, 3, 50, 400, 900, 2, 7]))
    value = loss(torch.zeros(0, loss.num_logits, requires_grad=True), torch.zeros(0, dtype=torch.int64))
    grads = torch.autograd.grad(value, [act.module.lambda_param, act.module.kappa_param], allow_unused=True)
    assert float(value.detach()) == 0.0 and all(g is not None and float(g) == 0.0 for g in grads)


def test_stable_equals_official_inside_droploss(make_stats, make_batch) -> None:
    """DropLoss + AGLU: both numerics give the same value and gradient where the official BCE's log floor is idle."""
    stats = make_stats([1, 3, 50, 400, 900, 2, 7])
    logits, labels = make_batch(64, 7, dtype=torch.float64)
    logits = logits.clamp(-4, 6)
    out = {}
    for numerics in ("stable", "official"):
        act = _aglu(0.6, 1.2)
        loss = DropLoss(activation=act, num_classes=7, stats=stats, numerics=numerics, seed=5)
        q = logits.clone().requires_grad_()
        value = loss(q, labels)
        value.backward()
        out[numerics] = (value.detach(), q.grad, act.module.lambda_param.grad, act.module.kappa_param.grad)
    for a, b in zip(out["stable"], out["official"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# The parameters in a model: optimizer, checkpoint, cascade sharing, logging
# ---------------------------------------------------------------------------------------------------------------
def test_state_dict_round_trip_restores_the_learned_values(make_stats) -> None:
    stats = make_stats([1, 3, 50, 400])
    trained = DropLoss(activation=AGLU(init_lambda=0.7, init_kappa=1.1), num_classes=4, stats=stats)
    with torch.no_grad():
        trained.activation.module.lambda_param.fill_(0.123)
        trained.activation.module.kappa_param.fill_(1.456)
    state = copy.deepcopy(trained.state_dict())
    assert {"activation_params.lambda_param", "activation_params.kappa_param"} <= set(state)
    fresh = DropLoss(activation=AGLU(init_lambda=0.7, init_kappa=1.1), num_classes=4, stats=stats)
    fresh.load_state_dict(state)
    q = torch.randn(5, 4)
    torch.testing.assert_close(fresh.scores(q), trained.scores(q), rtol=0, atol=0)
    assert activation_scalars(fresh) == pytest.approx({"aglu_lambda": 0.123, "aglu_kappa": 1.456})


def test_cascade_stages_share_one_set_and_the_optimizer_sees_it_once(make_stats) -> None:
    stats = make_stats([1, 3, 50, 400])
    act = AGLU()
    losses = nn.ModuleList(stage_losses(DropLoss(activation=act, num_classes=4, stats=stats), 3))
    assert all(loss.activation is act and loss.activation_params is act.module for loss in losses)
    head = nn.ModuleDict({"fc": nn.Linear(3, 4), "losses": losses})
    assert len(list(head.parameters())) == 2 + 2  # fc weight and bias, lambda and kappa once
    schedule = ScheduleConf(max_iter=10, steps=[], weight_decay=1e-4)
    optimizer, _ = build_optimizer(head, schedule, steps=[])
    decayed, free = optimizer.param_groups
    assert [id(p) for p in free["params"]] == [id(act.module.lambda_param), id(act.module.kappa_param)]
    assert free["weight_decay"] == 0.0 and decayed["weight_decay"] == 1e-4 and len(decayed["params"]) == 2
    assert set(activation_scalars(head)) == {"aglu_lambda", "aglu_kappa"}


def test_parameter_free_activations_keep_one_param_group(make_stats) -> None:
    loss = DropLoss(activation=Gumbel(), num_classes=4, stats=make_stats([1, 3, 50, 400]))
    head = nn.ModuleDict({"fc": nn.Linear(3, 4), "loss": loss})
    optimizer, _ = build_optimizer(head, ScheduleConf(max_iter=10, steps=[]), steps=[])
    assert len(optimizer.param_groups) == 1 and not hasattr(loss, "activation_params")
    assert activation_scalars(head) == {} and Gumbel().module is None


def test_module_is_a_parameter_holder() -> None:
    module = AGLU(init_lambda=0.25, init_kappa=2.0).module
    assert isinstance(module, APAParameters)
    assert (
        module.lambda_param.shape == ()
        and float(module.lambda_param.detach()) == 0.25
        and float(module.kappa_param.detach()) == 2.0
    )


# ---------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"init_lambda": 0.0}, "activation.init_lambda must be a positive finite number"),
        ({"init_lambda": -1.0}, "activation.init_lambda must be a positive finite number"),
        ({"init_kappa": 0.0}, "activation.init_kappa must be a positive finite number"),
        ({"init_kappa": float("nan")}, "activation.init_kappa must be a positive finite number"),
        ({"lambda_min": 0.0}, "activation.lambda_min must be a positive finite number"),
        ({"init_lambda": 1e-5}, "activation.init_lambda=1e-05 is below activation.lambda_min=0.0001"),
    ],
)
def test_out_of_range_parameters_are_refused_in_one_line(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        AGLU(**kwargs)
    assert "\n" not in str(error.value)
