"""The Adaptive Parametric Activation (APA) of Alexandridis et al., ECCV 2024, as a learnable classifier activation.

Shape shorthand:
    R: RoIs. C: logit columns (K or K + 1). lambda and kappa are scalars shared by every column.

    p(q) = (1 + lambda exp(-kappa q)) ** (-1 / lambda),    lambda > 0

It contains the activations this project compares: lambda = kappa = 1 is the sigmoid, and lambda -> 0 gives the
Gumbel CDF exp(-exp(-kappa q)) (kappa = 1: GOL's activation). The official code (kostas1515/AGLU) calls the
module ``Unified`` and uses it, with learned lambda and kappa, in attention gates; AGLU(z) = z p(z) is its
unbounded counterpart for hidden layers. Here p is the classifier's activation (``gol.activations.methods.AGLU``,
option ``activation=aglu``), so the one learned pair moves the classifier between sigmoid-like and Gumbel-like,
trained with the detector.

Log space, with x = log(lambda) - kappa q and s = softplus(x) = log(1 + lambda exp(-kappa q)):
    log p       = -s / lambda                                   (= -A)
    log (1 - p) = log(-expm1(-A)),     A = s / lambda
For A < 1e-3 (q large), 1 - p is formed from log A directly: log(1 - e^-A) = log A - A/2 + A^2/24 (next term
A^4/2880 < 1e-15), with log s = x when x < -40 (softplus(x) = e^x to 1e-17), so log(1 - p) -> -kappa q without
the underflow of A. Every expression is finite at any finite q and the gradients (in q, lambda and kappa) are
autograd's, exact to rounding.

lambda is clamped from below (``lambda_min``, 1e-4 in the official module) before use, as the official code does,
so a step that drives it to 0 or below cannot break the activation. The clamp passes no gradient: a lambda
parameter below ``lambda_min`` stays there (the activation is then Gumbel's), as in the official module. Measured
at demo scale, a run started at lambda = 0.01 reached the clamp within 100 iterations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gol.activations.base import ActivationParameters
from gol.activations.functions import upcast_logits

__all__ = ["LAMBDA_MIN", "APAParameters", "apa_log_prob", "apa_log_survival", "apa_official_prob", "apa_prob"]

LAMBDA_MIN = 1e-4  # the official module's clamp: torch.clamp(lambda_param, min=0.0001)
_SMALL_A = 1e-3  # below it, log(1 - e^-A) from its series around A = 0
_LOG_SOFTPLUS_LINEAR = -40.0  # below it, log softplus(x) = x (error e^x / 2 < 1e-17)


def _operands(logits: Tensor, lam: Tensor, kappa: Tensor, lambda_min: float) -> tuple[Tensor, Tensor, Tensor]:
    """(x, log lambda, lambda) in the logits' (upcast) dtype, lambda clamped at ``lambda_min``."""
    q = upcast_logits(logits)
    lam = lam.to(q.dtype).clamp(min=lambda_min)
    log_lam = torch.log(lam)
    return log_lam - kappa.to(q.dtype) * q, log_lam, lam  # x: (..., C)


def _softplus(x: Tensor) -> Tensor:
    """log(1 + e^x) to rounding everywhere (torch's ``softplus`` returns x above its threshold 20: 2e-9 off)."""
    return torch.logaddexp(x, torch.zeros_like(x))


def apa_log_prob(logits: Tensor, lam: Tensor, kappa: Tensor, *, lambda_min: float = LAMBDA_MIN) -> Tensor:
    """log p(q) = -softplus(log lambda - kappa q) / lambda, elementwise; finite for every finite q."""
    x, _, lam = _operands(logits, lam, kappa, lambda_min)
    return -_softplus(x) / lam


def apa_log_survival(logits: Tensor, lam: Tensor, kappa: Tensor, *, lambda_min: float = LAMBDA_MIN) -> Tensor:
    """log(1 - p(q)), elementwise, without cancellation; tends to -kappa q for large q."""
    x, log_lam, lam = _operands(logits, lam, kappa, lambda_min)
    # log A = log softplus(x) - log lambda; the where() arguments stay finite so no NaN gradient leaks through
    log_s = torch.where(x < _LOG_SOFTPLUS_LINEAR, x, torch.log(_softplus(x.clamp(min=_LOG_SOFTPLUS_LINEAR))))
    log_a = log_s - log_lam
    a = torch.exp(log_a)  # -log p
    series = log_a - a / 2 + a * a / 24
    direct = torch.log(-torch.expm1(-a.clamp(min=_SMALL_A)))
    return torch.where(a < _SMALL_A, series, direct)


def apa_prob(logits: Tensor, lam: Tensor, kappa: Tensor, *, lambda_min: float = LAMBDA_MIN) -> Tensor:
    """p(q) = (1 + lambda exp(-kappa q)) ** (-1 / lambda), elementwise, in [0, 1]."""
    return torch.exp(apa_log_prob(logits, lam, kappa, lambda_min=lambda_min))


def apa_official_prob(logits: Tensor, lam: Tensor, kappa: Tensor, *, lambda_min: float = LAMBDA_MIN) -> Tensor:
    """p(q) as the official ``Unified.forward`` evaluates it: exp(softplus_{beta=-1}(kappa q - log lambda) / lambda)."""
    q = upcast_logits(logits)
    lam = lam.to(q.dtype).clamp(min=lambda_min)
    return torch.exp(F.softplus(kappa.to(q.dtype) * q - torch.log(lam), beta=-1.0) / lam)


class APAParameters(ActivationParameters):
    """The learnable (lambda, kappa) of one APA activation: scalars, trained with the classifier.

    Registered in the model through the classification loss that holds the activation, so the optimizer trains
    them, checkpoints hold them and ``.to(device)`` moves them; every cascade stage shares the one module.
    """

    def __init__(self, *, init_lambda: float, init_kappa: float, lambda_min: float) -> None:
        super().__init__()
        self.lambda_param = nn.Parameter(torch.tensor(float(init_lambda)))  # ()
        self.kappa_param = nn.Parameter(torch.tensor(float(init_kappa)))  # ()
        self.lambda_min = lambda_min

    def scalars(self) -> dict[str, float]:
        # lambda as the activation uses it (clamped), kappa as is
        return {
            "aglu_lambda": max(float(self.lambda_param.detach()), self.lambda_min),
            "aglu_kappa": float(self.kappa_param.detach()),
        }

    def extra_repr(self) -> str:
        return f"lambda_min={self.lambda_min}"
