"""The activations of the paper: sigmoid, softmax, Gumbel (GOL) and probit; and the learnable APA (``aglu``).

Each class owns its probabilities, log-probabilities, test-time scores, official classifier initialisation
(paper-notes section 2) and, for the binary ones, its binary cross-entropy in both numerics.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from gol.activations.apa import LAMBDA_MIN, APAParameters, apa_log_prob, apa_log_survival, apa_official_prob, apa_prob
from gol.activations.base import Activation, BinaryActivation, Numerics
from gol.activations.functions import (
    gumbel_log_prob,
    gumbel_log_survival,
    gumbel_prob,
    probit_log_prob,
    probit_log_survival,
    probit_prob,
    upcast_logits,
)
from gol.activations.gumbel_fused import gumbel_binary_cross_entropy_sum, gumbel_positive_loss

__all__ = ["AGLU", "Gumbel", "Probit", "Sigmoid", "Softmax"]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_GUMBEL_OFFICIAL_CLAMP = (-4.0, 10.0)  # every official Gumbel loss clamps its logits (paper-notes 3.3)
_PROBIT_OFFICIAL_CLAMP = (-5.0, 5.0)  # the official 'normal' branch of DropLoss / FedLoss


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

    def binary_cross_entropy(self, logits: Tensor, target: Tensor, *, numerics: Numerics | str) -> Tensor:
        # mmdet and detectron2 use binary_cross_entropy_with_logits: the same in both numerics
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none")


class Softmax(Activation):
    """Softmax over the K + 1 columns (background at column 0). Default init 0.001 / -6.5 (official)."""

    name = "softmax"
    kind = "softmax"
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


class Gumbel(BinaryActivation):
    """Gumbel CDF eta(q) = exp(-exp(-q)) (GOL). Default init 0.001 / -2 (eta(-2) = 6.2e-4; official GOL configs)."""

    name = "gumbel"
    default_init_bias = -2.0
    official_logit_clamp: ClassVar[tuple[float, float] | None] = _GUMBEL_OFFICIAL_CLAMP
    official_ce_loss_clamp: ClassVar[tuple[float, float] | None] = (0.0, 20.0)  # GumbelCE (paper-notes 3.3)

    def prob(self, logits: Tensor) -> Tensor:
        return gumbel_prob(logits)

    def log_prob(self, logits: Tensor) -> Tensor:
        return gumbel_log_prob(logits)

    def log_survival(self, logits: Tensor) -> Tensor:
        return gumbel_log_survival(logits)

    def official_prob(self, logits: Tensor) -> Tensor:
        return 1.0 / torch.exp(torch.exp(-logits.clamp(*_GUMBEL_OFFICIAL_CLAMP)))  # the official expression

    def binary_cross_entropy(self, logits: Tensor, target: Tensor, *, numerics: Numerics | str) -> Tensor:
        if Numerics(numerics) is Numerics.official:
            return super().binary_cross_entropy(logits, target, numerics=numerics)
        # per element, the fused sum's terms: finite (value and gradient) at every finite logit, unlike
        # log_prob = -exp(-q), which overflows for q < -88.7 in float32 (and whose unused branch would put 0 * inf
        # into the gradient of a where())
        return torch.where(target > 0, gumbel_positive_loss(logits), -gumbel_log_survival(logits))

    def binary_cross_entropy_sum(
        self, logits: Tensor, positive_cols: Tensor, *, drop: Tensor | None, numerics: Numerics | str
    ) -> Tensor:
        if Numerics(numerics) is Numerics.stable:
            return gumbel_binary_cross_entropy_sum(logits, positive_cols, drop=drop)  # fused: loss and gradient
        return super().binary_cross_entropy_sum(logits, positive_cols, drop=drop, numerics=numerics)


class Probit(BinaryActivation):
    """Standard normal CDF Phi(q) (the official code's ``'normal'`` activation).

    Default init 0.001 / -3.45: the bias of the authors' probit config (Phi(-3.45) = 2.8e-4, between the
    Gumbel and sigmoid priors); the weight 0.001 matches the other activations so that the activation
    ablation changes one thing only.
    """

    name = "probit"
    default_init_bias = -3.45
    official_logit_clamp: ClassVar[tuple[float, float] | None] = _PROBIT_OFFICIAL_CLAMP

    def prob(self, logits: Tensor) -> Tensor:
        return probit_prob(logits)

    def log_prob(self, logits: Tensor) -> Tensor:
        return probit_log_prob(logits)

    def log_survival(self, logits: Tensor) -> Tensor:
        return probit_log_survival(logits)

    def official_prob(self, logits: Tensor) -> Tensor:
        return 0.5 + torch.erf(logits.clamp(*_PROBIT_OFFICIAL_CLAMP) * _INV_SQRT2) / 2.0  # the official expression


class AGLU(BinaryActivation):
    """The adaptive parametric activation p(q) = (1 + lambda e^{-kappa q})^{-1/lambda} with learned lambda, kappa.

    Defaults start it as the sigmoid (lambda = kappa = 1), with the sigmoid's classifier init 0.001 / -6.5; the
    logged lambda shows how far training moves it towards Gumbel (lambda -> 0). ``init_lambda`` near 0 (with
    ``init_bias=-2``, GOL's) starts it as the Gumbel activation instead.

    ``Numerics.stable``: the log-space forms of ``gol.activations.apa``. ``Numerics.official``: p as the official
    ``Unified`` module evaluates it (torch's ``softplus`` with beta = -1) and torch's probability-space BCE (its
    log clamped at -100), the nearest thing to an official classifier loss, which the official code does not have.

    Args:
        init_lambda: initial lambda, > 0 and at least ``lambda_min``.
        init_kappa: initial kappa (the slope), > 0 so that the score rises with the logit.
        lambda_min: lambda's lower clamp during training and scoring (the official module's 1e-4), > 0.
        init_weight, init_bias, init, scoring: as every activation (``Activation``).
    """

    name = "aglu"
    default_init_bias = -6.5  # the sigmoid's: at the default lambda = kappa = 1 the activation is the sigmoid

    def __init__(
        self,
        *,
        init_lambda: float = 1.0,
        init_kappa: float = 1.0,
        lambda_min: float = LAMBDA_MIN,
        init_weight: float | None = None,
        init_bias: float | None = None,
        init: str = "constant",
        scoring: str = "own",
    ) -> None:
        super().__init__(init_weight=init_weight, init_bias=init_bias, init=init, scoring=scoring)
        values = {"init_lambda": init_lambda, "init_kappa": init_kappa, "lambda_min": lambda_min}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"activation.{key} must be a positive finite number, got {value!r}")
        if init_lambda < lambda_min:
            raise ValueError(
                f"activation.init_lambda={init_lambda} is below activation.lambda_min={lambda_min} (the clamp it "
                "would start at); raise init_lambda or lower lambda_min"
            )
        self.init_lambda, self.init_kappa, self.lambda_min = float(init_lambda), float(init_kappa), float(lambda_min)
        self._module = APAParameters(init_lambda=init_lambda, init_kappa=init_kappa, lambda_min=self.lambda_min)

    @property
    def module(self) -> APAParameters:
        return self._module

    def _params(self) -> tuple[Tensor, Tensor]:
        return self._module.lambda_param, self._module.kappa_param

    def prob(self, logits: Tensor) -> Tensor:
        return apa_prob(logits, *self._params(), lambda_min=self.lambda_min)

    def log_prob(self, logits: Tensor) -> Tensor:
        return apa_log_prob(logits, *self._params(), lambda_min=self.lambda_min)

    def log_survival(self, logits: Tensor) -> Tensor:
        return apa_log_survival(logits, *self._params(), lambda_min=self.lambda_min)

    def official_prob(self, logits: Tensor) -> Tensor:
        return apa_official_prob(logits, *self._params(), lambda_min=self.lambda_min)

    def _key(self) -> tuple[object, ...]:
        return (*super()._key(), self.init_lambda, self.init_kappa, self.lambda_min)

    def __repr__(self) -> str:
        return (
            f"{super().__repr__()[:-1]}, init_lambda={self.init_lambda}, init_kappa={self.init_kappa}, "
            f"lambda_min={self.lambda_min})"
        )
