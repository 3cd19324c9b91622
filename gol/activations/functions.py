"""Elementwise maths of the Gumbel and probit activations: probabilities and stable log-probabilities.

Every function computes in at least float32 (half-precision inputs are upcast) and is safe at any finite logit.
The gradients of ``log(1 - eta)`` and ``log Phi`` are supplied in closed form (paper eq. 3 for Gumbel;
``sqrt(2/pi) / erfcx(-q/sqrt 2)`` for d log Phi / dq) because the autograd chains of the naive forms overflow or
lose all precision in the tails (torch's own ``log_ndtr`` backward is 6x off at q = -1e4 in float32).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "gumbel_log_prob",
    "gumbel_log_survival",
    "gumbel_prob",
    "probit_log_prob",
    "probit_log_survival",
    "probit_prob",
    "upcast_logits",
]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_SQRT_HALF = math.sqrt(0.5)
# Beyond these logits log(1 - eta(q)) equals 0 (q < -20: eta = exp(-4.85e8)) or -q (q > 80: the next term,
# -exp(-q) / 2, is below float64 resolution), so evaluating the closed form inside the range is exact.
_GUMBEL_SURVIVAL_LOW = -20.0
_GUMBEL_SURVIVAL_HIGH = 80.0


def upcast_logits(x: Tensor) -> Tensor:
    """Upcast half-precision inputs (autocast outputs) so that exp/log keep their accuracy."""
    if not x.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got dtype {x.dtype}")
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


# ---------------------------------------------------------------------------------------------------------
# Gumbel: eta(q) = exp(-exp(-q))
# ---------------------------------------------------------------------------------------------------------
def gumbel_prob(logits: Tensor) -> Tensor:
    """eta(q) = exp(-exp(-q)), elementwise; in [0, 1] and non-decreasing."""
    q = upcast_logits(logits)
    return torch.exp(-torch.exp(-q))


def gumbel_log_prob(logits: Tensor) -> Tensor:
    """log eta(q) = -exp(-q), elementwise (exact; -inf once exp(-q) overflows, i.e. q < -88.7 in float32)."""
    return -torch.exp(-upcast_logits(logits))


class _GumbelLogSurvival(torch.autograd.Function):
    """log(1 - eta(q)) with the closed-form gradient -t eta / (1 - eta), t = exp(-q) (paper eq. 3)."""

    @staticmethod
    def forward(ctx: Any, q: Tensor) -> Tensor:
        qc = q.clamp(_GUMBEL_SURVIVAL_LOW, _GUMBEL_SURVIVAL_HIGH)
        t = torch.exp(-qc)
        one_minus_eta = -torch.expm1(-t)
        out = torch.where(q > _GUMBEL_SURVIVAL_HIGH, -q, torch.log(one_minus_eta))
        ctx.save_for_backward(q, t, one_minus_eta)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        q, t, one_minus_eta = ctx.saved_tensors
        d = -t * torch.exp(-t) / one_minus_eta
        d = torch.where(q > _GUMBEL_SURVIVAL_HIGH, -torch.ones_like(d), d)
        return grad * d


def gumbel_log_survival(logits: Tensor) -> Tensor:
    """log(1 - eta(q)) = log(-expm1(-exp(-q))), elementwise, finite for every finite q."""
    return _GumbelLogSurvival.apply(upcast_logits(logits))


# ---------------------------------------------------------------------------------------------------------
# Probit: Phi(q), the standard normal CDF
# ---------------------------------------------------------------------------------------------------------
class _LogNdtr(torch.autograd.Function):
    """log Phi(x) with the stable gradient phi(x) / Phi(x) = sqrt(2/pi) / erfcx(-x / sqrt(2))."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.special.log_ndtr(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        # erfcx(-x/sqrt 2) overflows to inf for x > ~13 (float32), giving the correct limit 0.
        return grad * (_SQRT_2_OVER_PI / torch.special.erfcx(-x * _SQRT_HALF))


def probit_prob(logits: Tensor) -> Tensor:
    """Phi(q), the standard normal CDF, elementwise."""
    return torch.special.ndtr(upcast_logits(logits))


def probit_log_prob(logits: Tensor) -> Tensor:
    """log Phi(q), elementwise, finite for every finite q."""
    return _LogNdtr.apply(upcast_logits(logits))


def probit_log_survival(logits: Tensor) -> Tensor:
    """log(1 - Phi(q)) = log Phi(-q), elementwise (symmetry of the normal CDF)."""
    return _LogNdtr.apply(-upcast_logits(logits))
