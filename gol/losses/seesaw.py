"""Seesaw loss (Wang et al., CVPR 2021; mmdet ``SeesawLoss``) with a softmax classifier and an objectness branch.

Shape shorthand:
    R: RoIs. P: foreground RoIs. K: foreground categories; labels in [0, K], 0 = background.

Logit layout (K + 2 columns), chosen so that columns 0..K read like a torchvision softmax head:
    column 0        objectness logit "background"
    columns 1..K    class logits z, column k is label k
    column K + 1    objectness logit "object"
(mmdet orders them [z_1..z_K, object, background]; only the order differs.)

Loss (paper-notes 3.7), with N_j the running count of RoIs labelled j (``cum_samples``, this batch included)
and sigma = softmax(z) with gradients stopped:
    M_ij = (N_j / N_i) ** p   if N_j < N_i else 1              mitigation
    C_ij = (sigma_j / max(sigma_i, eps)) ** q   if > 1 else 1   compensation
    class term  = sum over foreground RoIs of CE(z + (1 - y) log(M C), label)
    object term = sum over all RoIs of 2-way CE([object, background], background?)
    L = (class term + object term) / R
computed in log space (log M = p min(log N_j - log N_i, 0), log C = q max(log sigma_j - max(log sigma_i,
log eps), 0)); this equals mmdet's pow-then-log up to rounding.
Test scores: softmax(z)_k * softmax([object, background])_object.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from gol.activations import Activation, Numerics, upcast_logits
from gol.data.stats import CategoryStats
from gol.losses.base import ClassificationLoss

__all__ = ["SeesawLoss", "seesaw_loss", "seesaw_scores"]


def _split(logits: Tensor) -> tuple[Tensor, Tensor]:
    """(R, K + 2) -> class logits (R, K) and objectness logits (R, 2) ordered [object, background]."""
    num_classes = logits.shape[1] - 2
    objectness = torch.stack((logits[:, num_classes + 1], logits[:, 0]), dim=1)  # (R, 2)
    return logits[:, 1 : num_classes + 1], objectness


def _official_log_weight(zp: Tensor, gt: Tensor, counts: Tensor, *, p: float, q: float, eps: float) -> Tensor:
    """log(M * C) as mmdet's ``seesaw_ce_loss`` computes it: ratio matrices, ``pow``, then ``log`` (P, K)."""
    weight = torch.ones_like(zp)
    if p > 0:
        ratio = counts.clamp(min=1.0)[None, :] / counts.clamp(min=1.0)[:, None]  # (K, K): N_j / N_i
        below = (ratio < 1.0).to(zp.dtype)
        weight = weight * (ratio.pow(p) * below + (1 - below))[gt]
    if q > 0:
        sigma = torch.softmax(zp.detach(), dim=1)  # (P, K)
        ratio = sigma / sigma.gather(1, gt.unsqueeze(1)).clamp(min=eps)
        above = (ratio > 1.0).to(zp.dtype)
        weight = weight * (ratio.pow(q) * above + (1 - above))
    return weight.log()


def seesaw_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    cum_samples: Tensor,
    p: float = 0.8,
    q: float = 2.0,
    eps: float = 1e-2,
    numerics: Numerics | str = Numerics.stable,
) -> Tensor:
    """Seesaw loss (class term + objectness term), mean over RoIs.

    Args:
        logits: (R, K + 2) in the layout of the module docstring.
        labels: (R,) int64 in [0, K].
        cum_samples: (K + 1,) running count of RoIs per label (index = label, 0 = background), this batch
            included (the module updates it before calling).
        p, q, eps: mitigation exponent, compensation exponent, floor of the GT probability (official 0.8, 2, 1e-2).
        numerics: "stable" (log space) or "official" (mmdet's pow-then-log; equal up to rounding).
    """
    x = upcast_logits(logits)
    with torch.autocast(device_type=x.device.type, enabled=False):
        z, objectness = _split(x)
        fg = labels > 0
        gt = labels[fg] - 1  # (P,)
        zp = z[fg]  # (P, K)
        if Numerics(numerics) is Numerics.official:
            log_weight = _official_log_weight(zp, gt, cum_samples[1:].to(zp.dtype), p=p, q=q, eps=eps)
        else:
            log_counts = cum_samples[1:].to(zp.dtype).clamp(min=1.0).log()  # (K,)
            log_weight = torch.zeros_like(zp)
            if p > 0:
                log_weight += p * (log_counts.unsqueeze(0) - log_counts[gt].unsqueeze(1)).clamp(max=0.0)  # (P, K)
            if q > 0:
                log_sigma = torch.log_softmax(zp.detach(), dim=1)  # (P, K)
                log_self = log_sigma.gather(1, gt.unsqueeze(1)).clamp(min=math.log(eps))  # (P, 1)
                log_weight += q * (log_sigma - log_self).clamp(min=0.0)
        not_gt = torch.ones_like(zp).scatter_(1, gt.unsqueeze(1), 0.0)  # (P, K)
        class_term = F.cross_entropy(zp + log_weight * not_gt, gt, reduction="sum")
        object_term = F.cross_entropy(objectness, (~fg).long(), reduction="sum")
        return (class_term + object_term) / labels.shape[0]


def seesaw_scores(logits: Tensor) -> Tensor:
    """(R, K + 2) -> (R, K): softmax(z)_k * P(object)."""
    z, objectness = _split(upcast_logits(logits))
    return torch.softmax(z, dim=1) * torch.softmax(objectness, dim=1)[:, :1]


class SeesawLoss(ClassificationLoss):
    """Seesaw loss over K + 2 logits (softmax activation only).

    Args:
        activation: Softmax (used for the classifier initialisation).
        num_classes: K.
        stats: not used (Seesaw counts RoI labels as it trains; checked against num_classes if given).
        p: mitigation exponent (official 0.8). q: compensation exponent (official 2.0).
        eps: floor of the GT-class probability in the compensation ratio (official 1e-2).
        numerics: "stable" (default, log space) or "official" (mmdet's pow-then-log).

    Buffers:
        cum_samples: (K + 1,) float32 running count of RoIs per label (index = label), updated in training
            mode before each loss evaluation, as mmdet does; part of the checkpoint.
    """

    activation_kinds = ("softmax",)
    calibratable = False  # K + 2 logits scored by ``seesaw_scores``: FRACAL's reference has no Seesaw form
    cum_samples: Tensor

    def __init__(
        self,
        *,
        activation: Activation,
        num_classes: int,
        stats: CategoryStats | None = None,
        p: float = 0.8,
        q: float = 2.0,
        eps: float = 1e-2,
        numerics: Numerics | str = Numerics.stable,
    ) -> None:
        super().__init__(activation=activation, num_classes=num_classes, num_logits=num_classes + 2)
        self.numerics = Numerics(numerics)
        self._check_stats(stats)
        for name, value, ok in (("p", p, p >= 0), ("q", q, q >= 0), ("eps", eps, 0 < eps <= 1)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and ok):
                raise ValueError(
                    f"SeesawLoss: {name} must be {'in (0, 1]' if name == 'eps' else '>= 0'}, got {value!r}"
                )
        self.p, self.q, self.eps = float(p), float(q), float(eps)
        self.register_buffer("cum_samples", torch.zeros(num_classes + 1, dtype=torch.float32), persistent=True)

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        if self.training:
            self.cum_samples += torch.bincount(labels, minlength=self.num_classes + 1).to(self.cum_samples)
        return seesaw_loss(
            logits, labels, cum_samples=self.cum_samples, p=self.p, q=self.q, eps=self.eps, numerics=self.numerics
        )

    def scores(self, logits: Tensor) -> Tensor:
        if logits.dim() != 2 or logits.shape[1] != self.num_logits:
            raise ValueError(
                f"SeesawLoss.scores: logits must have shape (R, {self.num_logits}), got {tuple(logits.shape)}"
            )
        return seesaw_scores(logits)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}, q={self.q}, eps={self.eps}, numerics={self.numerics.value}"
