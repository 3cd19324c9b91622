"""Equalization loss v2 (EQLv2; Tan et al., CVPR 2021) with any binary activation.

Shape shorthand:
    R: RoIs. K: foreground categories; labels in [0, K], 0 = background.
    K + 1 logits: column 0 is the background ("objectness") logit, column k is label k. (The official EQLv2 head
    puts the background column last; only the order differs.) A background RoI's positive target is column 0.

Loss, with p the activation, y the one-hot target over the K + 1 columns and BCE the activation's own binary
cross-entropy:
    L = (1/R) sum_r sum_j w_rj BCE(p(q_rj), y_rj),   w_rj = y_rj pos_w_j + (1 - y_rj) neg_w_j
    neg_w_j = sigmoid(gamma (g_j - mu)),   pos_w_j = 1 + alpha (1 - neg_w_j)   (foreground columns; 1 for column 0)
    g_j = G+_j / (G-_j + 1e-10)
G+_j and G-_j accumulate, over every training step so far, the magnitudes of the weighted gradients that the
positive and the negative elements of column j sent to their logits:
    G+_j += sum_r y_rj w_rj |dBCE_rj / dq_rj|,   G-_j += sum_r (1 - y_rj) w_rj |dBCE_rj / dq_rj|
with this step's weights (computed from the statistics *before* the step), summed over the data-parallel processes.
A class whose positives have received little gradient compared with its negatives (a rare class) gets its
negative gradients damped and its positive ones boosted. Before the first step g_j = 100 (all weights 1), as in
the official code. Defaults gamma 12, mu 0.8, alpha 4 (paper, LVIS v1).

What "gradient" means for a non-sigmoid activation: the statistics are the derivative of the loss's own per-element
BCE with respect to the logit (in the loss's numerics), taken on detached logits. For the sigmoid this is
|p - y|, the official expression; for Gumbel (eta = exp(-exp(-q)), GOL paper eq. 3) it is exp(-q) for a positive
and exp(-q) eta / (1 - eta) for a negative, not |eta - y|. So EQLv2 + Gumbel balances the gradients that the Gumbel
BCE actually sends to each class, which is the point of pairing the re-weighting with that activation.

Test scores: p(q_k) (1 - p(q_0)) (the official ``test_with_obj=True``), or p(q_k) with ``score_objectness=False``.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.distributed as dist
from torch import Tensor

from gol.activations import Activation, BinaryActivation, Numerics, one_hot_targets, upcast_logits
from gol.data.stats import CategoryStats
from gol.losses.base import ClassificationLoss
from gol.losses.binary import positive_columns

__all__ = ["EQLv2Loss", "eqlv2_gradient_sums", "eqlv2_loss", "eqlv2_weights"]

log = logging.getLogger(__name__)

INITIAL_RATIO = 100.0  # official initial gradient ratio: every weight is 1 until the first step is collected
RATIO_EPS = 1e-10  # official guard of the ratio's denominator


def eqlv2_weights(pos_neg: Tensor, *, gamma: float, mu: float, alpha: float) -> tuple[Tensor, Tensor]:
    """(K,) gradient ratios g -> (K + 1,) positive and negative weights per column (column 0, background: 1)."""
    neg = torch.sigmoid(gamma * (pos_neg - mu))  # (K,)
    pos = 1.0 + alpha * (1.0 - neg)  # (K,)
    one = pos_neg.new_ones(1)
    return torch.cat((one, pos)), torch.cat((one, neg))  # (K + 1,) each


def _weights_per_element(target: Tensor, pos_weight: Tensor, neg_weight: Tensor) -> Tensor:
    """(R, K + 1) 0/1 targets and (K + 1,) weights -> (R, K + 1) w = y pos_w + (1 - y) neg_w."""
    return torch.where(target > 0, pos_weight.to(target.dtype), neg_weight.to(target.dtype))


def eqlv2_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    activation: BinaryActivation,
    pos_weight: Tensor,
    neg_weight: Tensor,
    numerics: Numerics | str = Numerics.stable,
) -> Tensor:
    """EQLv2: (R, K + 1) logits, (R,) labels in [0, K], (K + 1,) weights -> scalar (sum over columns, mean over R).

    Computed in at least float32 (float64 for float64 logits), autocast disabled. R must be > 0.
    """
    q = upcast_logits(logits)
    with torch.autocast(device_type=q.device.type, enabled=False):
        target = one_hot_targets(positive_columns(labels, background_column=True), q.shape[1], q.dtype)  # (R, K + 1)
        per_element = activation.binary_cross_entropy(q, target, numerics=numerics)  # (R, K + 1)
        weight = _weights_per_element(target, pos_weight, neg_weight)  # (R, K + 1)
        return (per_element * weight).sum() / q.shape[0]


def eqlv2_gradient_sums(
    logits: Tensor,
    labels: Tensor,
    *,
    activation: BinaryActivation,
    pos_weight: Tensor,
    neg_weight: Tensor,
    numerics: Numerics | str = Numerics.stable,
) -> tuple[Tensor, Tensor]:
    """This step's contribution to the statistics: (K,) sums of w |dBCE/dq| over the positive and the negative
    elements of each foreground column (the background column 0 is not collected, as in the official code).

    The derivative is that of the activation's own per-element BCE (see the module docstring), taken on a detached
    copy of the logits: nothing reaches the caller's graph. Returns float tensors of the logits' (upcast) dtype.
    """
    q = upcast_logits(logits).detach()
    with torch.enable_grad(), torch.autocast(device_type=q.device.type, enabled=False):
        leaf = q.requires_grad_(True)
        target = one_hot_targets(positive_columns(labels, background_column=True), q.shape[1], q.dtype)  # (R, K + 1)
        per_element = activation.binary_cross_entropy(leaf, target, numerics=numerics)  # (R, K + 1)
        (grad,) = torch.autograd.grad(per_element.sum(), leaf)  # elementwise: (R, K + 1) dBCE_rj / dq_rj
    weighted = grad.abs() * _weights_per_element(target, pos_weight, neg_weight)  # (R, K + 1)
    pos = (weighted * target).sum(dim=0)[1:]  # (K,)
    neg = (weighted * (1.0 - target)).sum(dim=0)[1:]  # (K,)
    return pos, neg


def _check_hyper_parameter(name: str, value: float, ok: bool, rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok:
        raise ValueError(f"EQLv2Loss: {name} must be {rule} (paper: gamma 12, mu 0.8, alpha 4), got {value!r}")
    return float(value)


class EQLv2Loss(ClassificationLoss):
    """EQLv2 over K + 1 logits (background column 0) with a sigmoid, Gumbel or probit activation.

    Args:
        activation: any binary activation.
        num_classes: K.
        stats: not used (EQLv2 collects its statistics as it trains; checked against num_classes if given).
        gamma: slope of the weighting function, > 0 (paper: 12).
        mu: centre of the weighting function, >= 0 (paper: 0.8).
        alpha: extra weight of the positives of a damped class, >= 0 (paper: 4).
        score_objectness: test scores p(q_k) (1 - p(q_0)) (official ``test_with_obj=True``) or p(q_k).
        numerics: "stable" (default) or "official" (``gol.activations.Numerics``).

    Buffers (float32, part of the checkpoint; each cascade stage's copy has its own):
        pos_grad, neg_grad: (K,) accumulated positive and negative gradient magnitudes per class.
        pos_neg: (K,) their ratio g, 100 until the first collected step.
    The statistics are updated in training mode only, after the loss is evaluated, and all-reduced (sum) across
    processes when torch.distributed is initialised, so every process weights alike; every process must then call
    the loss equally often (it does so even for a step without RoIs).
    """

    activation_kinds = ("binary",)
    pos_grad: Tensor
    neg_grad: Tensor
    pos_neg: Tensor

    def __init__(
        self,
        *,
        activation: Activation,
        num_classes: int,
        stats: CategoryStats | None = None,
        gamma: float = 12.0,
        mu: float = 0.8,
        alpha: float = 4.0,
        score_objectness: bool = True,
        numerics: Numerics | str = Numerics.stable,
    ) -> None:
        super().__init__(activation=activation, num_classes=num_classes, num_logits=num_classes + 1)
        self._check_stats(stats)
        self.gamma = _check_hyper_parameter("gamma", gamma, gamma > 0, "> 0")
        self.mu = _check_hyper_parameter("mu", mu, mu >= 0, ">= 0")
        self.alpha = _check_hyper_parameter("alpha", alpha, alpha >= 0, ">= 0")
        if not isinstance(score_objectness, bool):
            raise ValueError(f"EQLv2Loss: score_objectness must be true or false, got {score_objectness!r}")
        self.score_objectness = score_objectness
        self.numerics = Numerics(numerics)
        self.register_buffer("pos_grad", torch.zeros(num_classes), persistent=True)
        self.register_buffer("neg_grad", torch.zeros(num_classes), persistent=True)
        self.register_buffer("pos_neg", torch.full((num_classes,), INITIAL_RATIO), persistent=True)

    def weights(self) -> tuple[Tensor, Tensor]:
        """(K + 1,) positive and negative weights from the current statistics."""
        return eqlv2_weights(self.pos_neg, gamma=self.gamma, mu=self.mu, alpha=self.alpha)

    def _checked_forward(self, logits: Tensor, labels: Tensor, rois_per_image: list[int] | None) -> Tensor:
        activation = self.activation
        assert isinstance(activation, BinaryActivation)
        pos_w, neg_w = self.weights()
        numerics = self.numerics
        if logits.shape[0] == 0:
            value = self.empty_loss(logits)
        else:
            value = eqlv2_loss(
                logits, labels, activation=activation, pos_weight=pos_w, neg_weight=neg_w, numerics=numerics
            )
        if self.training:  # also without RoIs: every process joins the all-reduce of every step
            self._accumulate(
                *eqlv2_gradient_sums(
                    logits, labels, activation=activation, pos_weight=pos_w, neg_weight=neg_w, numerics=numerics
                )
            )
        return value

    @torch.no_grad()
    def _accumulate(self, pos: Tensor, neg: Tensor) -> None:
        """Add one step's (K,) sums to the statistics, summed over processes first (the official all-reduce)."""
        step = torch.stack((pos, neg)).to(self.pos_grad)  # (2, K)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(step, op=dist.ReduceOp.SUM)
        # A non-finite contribution (diverged logits; the engine skips such a step) must not poison the running
        # sums for the rest of training; every process drops the same entries, after the reduction.
        step = torch.where(torch.isfinite(step), step, torch.zeros_like(step))
        self.pos_grad += step[0]
        self.neg_grad += step[1]
        self.pos_neg.copy_(self.pos_grad / (self.neg_grad + RATIO_EPS))

    def scores(self, logits: Tensor) -> Tensor:
        if not self.score_objectness or self.activation.scoring != "own":
            return super().scores(logits)
        if logits.dim() != 2 or logits.shape[1] != self.num_logits:
            raise ValueError(
                f"EQLv2Loss.scores: logits must have shape (R, {self.num_logits}), got {tuple(logits.shape)}"
            )
        activation = self.activation
        assert isinstance(activation, BinaryActivation)
        q = upcast_logits(logits)
        objectness = activation.log_survival(q[:, :1]).exp()  # (R, 1): P(object)
        if self.calibration is not None:  # calibration=fracal: its calibrated class scores, times P(object)
            return self.calibration.scores(logits, activation=activation, background=True) * objectness
        return activation.prob(q[:, 1:]) * objectness  # (R, K): p(class) P(object)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, gamma={self.gamma}, mu={self.mu}, alpha={self.alpha}, "
            f"score_objectness={self.score_objectness}, numerics={self.numerics.value}"
        )
