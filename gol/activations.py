"""Classification activations: sigmoid, softmax, Gumbel and probit.

Shape shorthand:
    R: RoIs (rows of the classifier output).
    K: foreground categories; label k in 1..K, label 0 is background (torchvision convention).
    C: width of a logit tensor (K + 1 with a background column at index 0, or K without one).

One ``Activation`` object per method serves both the training loss and test-time scoring, so the two cannot
drift apart. Every function here is elementwise (softmax: over the last dimension), computes in at least
float32 (bfloat16/float16 inputs, e.g. under autocast, are upcast) and is safe at any finite logit:

========  ==========================  ===============================  ===============================
name      p(q)                        log p                            log (1 - p)
========  ==========================  ===============================  ===============================
sigmoid   1 / (1 + exp(-q))           logsigmoid(q)                    logsigmoid(-q)
gumbel    exp(-exp(-q))               -exp(-q)                         log(-expm1(-exp(-q)))
probit    Phi(q) (normal CDF)         log_ndtr(q)                      log_ndtr(-q)
softmax   softmax(q)                  log_softmax(q)                   (not a binary activation)
========  ==========================  ===============================  ===============================

The Gumbel activation is the CDF of the standard Gumbel distribution (GOL paper, eq. 1). Its gradient, and
that of the probit, are supplied in closed form (paper eq. 3 for Gumbel; ``sqrt(2/pi) / erfcx(-q/sqrt 2)``
for d log Phi / dq) because the autograd chains of the naive forms overflow or lose all precision in the
tails (torch's own ``log_ndtr`` backward is 6x off at q = -1e4 in float32).

Classifier initialisation (``init_classifier``) follows the official configs: every weight of the last
classification layer is set to a constant and every bias to a constant chosen so that the initial
foreground probability is small (paper-notes section 2, "Classifier initialisation").
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "BinaryActivation",
    "Gumbel",
    "Probit",
    "Sigmoid",
    "Softmax",
    "get_activation",
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


# ---------------------------------------------------------------------------------------------------------
# Activation objects
# ---------------------------------------------------------------------------------------------------------
class Activation(ABC):
    """One classification activation: probabilities, log-probabilities, test scores and classifier init.

    Args:
        init_weight: constant for every weight of the last classification layer (``init_classifier``).
        init_bias: constant for every bias of that layer.
    """

    name: ClassVar[str]
    is_binary: ClassVar[bool]
    default_init_weight: ClassVar[float] = 0.001
    default_init_bias: ClassVar[float]

    def __init__(self, *, init_weight: float | None = None, init_bias: float | None = None) -> None:
        self.init_weight = float(self.default_init_weight if init_weight is None else init_weight)
        self.init_bias = float(self.default_init_bias if init_bias is None else init_bias)
        for arg in ("init_weight", "init_bias"):
            if not math.isfinite(getattr(self, arg)):
                raise ValueError(f"{type(self).__name__}: {arg} must be finite, got {getattr(self, arg)}")

    @abstractmethod
    def prob(self, logits: Tensor) -> Tensor:
        """(..., C) -> (..., C) probabilities in [0, 1] (softmax: over the last dimension)."""

    @abstractmethod
    def log_prob(self, logits: Tensor) -> Tensor:
        """(..., C) -> (..., C) log-probabilities, computed in log space."""

    @abstractmethod
    def scores(self, logits: Tensor, *, background: bool) -> Tensor:
        """(R, C) logits -> (R, K) test-time foreground scores; column k is label k + 1.

        Args:
            logits: classifier output.
            background: whether column 0 of ``logits`` is a background logit (C = K + 1) or not (C = K).
        """

    def init_classifier(self, layer: nn.Module) -> None:
        """Set every weight of ``layer`` (e.g. the box predictor's ``cls_score`` Linear) to ``init_weight``
        and every bias to ``init_bias``, as the official configs' ``Constant`` init of ``fc_cls`` does."""
        weight = getattr(layer, "weight", None)
        bias = getattr(layer, "bias", None)
        if not isinstance(weight, Tensor) or not isinstance(bias, Tensor):
            raise TypeError(
                f"init_classifier needs a layer with a weight and a bias (e.g. nn.Linear(..., bias=True)), "
                f"got {type(layer).__name__}"
            )
        with torch.no_grad():
            weight.fill_(self.init_weight)
            bias.fill_(self.init_bias)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(init_weight={self.init_weight}, init_bias={self.init_bias})"

    def __eq__(self, other: object) -> bool:
        return (
            type(self) is type(other)
            and self.init_weight == other.init_weight  # type: ignore[attr-defined]
            and self.init_bias == other.init_bias  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.init_weight, self.init_bias))


class BinaryActivation(Activation):
    """An elementwise activation: every logit column is an independent binary classifier."""

    is_binary = True

    @abstractmethod
    def log_survival(self, logits: Tensor) -> Tensor:
        """(..., C) -> (..., C) log(1 - p), computed without cancellation."""

    def scores(self, logits: Tensor, *, background: bool) -> Tensor:
        # Background column (if any) is dropped: the official heads score each class independently.
        return self.prob(logits[:, 1:] if background else logits)  # (R, K)


class Sigmoid(BinaryActivation):
    """Logistic sigmoid. Default init 0.001 / -6.5 (sigma(-6.5) = 1.5e-3; official ``configs/activations``)."""

    name = "sigmoid"
    default_init_bias = -6.5

    def prob(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(upcast_logits(logits))

    def log_prob(self, logits: Tensor) -> Tensor:
        return F.logsigmoid(upcast_logits(logits))

    def log_survival(self, logits: Tensor) -> Tensor:
        return F.logsigmoid(-upcast_logits(logits))


class Gumbel(BinaryActivation):
    """Gumbel CDF eta(q) = exp(-exp(-q)) (GOL). Default init 0.001 / -2 (eta(-2) = 6.2e-4; official GOL configs)."""

    name = "gumbel"
    default_init_bias = -2.0

    def prob(self, logits: Tensor) -> Tensor:
        return gumbel_prob(logits)

    def log_prob(self, logits: Tensor) -> Tensor:
        return gumbel_log_prob(logits)

    def log_survival(self, logits: Tensor) -> Tensor:
        return gumbel_log_survival(logits)


class Probit(BinaryActivation):
    """Standard normal CDF Phi(q) (the official code's ``'normal'`` activation).

    Default init 0.001 / -3.45: the bias of the authors' probit config (Phi(-3.45) = 2.8e-4, between the
    Gumbel and sigmoid priors); the weight 0.001 matches the other activations so that the activation
    ablation changes one thing only.
    """

    name = "probit"
    default_init_bias = -3.45

    def prob(self, logits: Tensor) -> Tensor:
        return probit_prob(logits)

    def log_prob(self, logits: Tensor) -> Tensor:
        return probit_log_prob(logits)

    def log_survival(self, logits: Tensor) -> Tensor:
        return probit_log_survival(logits)


class Softmax(Activation):
    """Softmax over the K + 1 columns (background at column 0). Default init 0.001 / -6.5 (official)."""

    name = "softmax"
    is_binary = False
    default_init_bias = -6.5

    def prob(self, logits: Tensor) -> Tensor:
        return torch.softmax(upcast_logits(logits), dim=-1)

    def log_prob(self, logits: Tensor) -> Tensor:
        return torch.log_softmax(upcast_logits(logits), dim=-1)

    def scores(self, logits: Tensor, *, background: bool) -> Tensor:
        if not background:
            raise ValueError("softmax scores need the background column: pass logits of width K + 1")
        return self.prob(logits)[:, 1:]  # (R, K), background column 0 dropped as torchvision does


ACTIVATIONS: dict[str, type[Activation]] = {a.name: a for a in (Sigmoid, Softmax, Gumbel, Probit)}


def get_activation(name: str) -> Activation:
    """The activation called ``name`` ("sigmoid", "softmax", "gumbel" or "probit") with official defaults."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
