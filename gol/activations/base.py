"""The ``Activation`` object: one per method, owning its maths for the training loss and for test-time scoring.

Shape shorthand:
    R: RoIs (rows of the classifier output).
    K: foreground categories; label k in 1..K, label 0 is background (torchvision convention).
    C: width of a logit tensor (K + 1 with a background column at index 0, or K without one).

A loss accepts activations by kind (``"binary"``: every column an independent binary classifier; ``"softmax"``:
one distribution over the columns), never by name. A binary activation owns its binary cross-entropy, in both
numerics (``Numerics``): the loss only decides which negative terms to drop. A new activation is one subclass
here (it registers itself in ``ACTIVATIONS``), one schema in ``gol/config/activation.py`` and one YAML file.

An activation with learnable parameters (AGLU) carries them in one ``ActivationParameters`` module (``module``);
every classification loss holding the activation registers that module as its submodule, so the model's
optimizer trains it, checkpoints hold it and ``.to(device)`` moves it. Parameter-free activations have none.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gol.activations.functions import upcast_logits
from gol.numerics import Numerics

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "SCORINGS",
    "Activation",
    "ActivationParameters",
    "BinaryActivation",
    "Numerics",
    "activation_scalars",
    "get_activation",
    "one_hot_targets",
]

# Every concrete activation by its name (sigmoid, softmax, gumbel, probit, ...), in the order they are defined.
ACTIVATIONS: dict[str, type[Activation]] = {}


def one_hot_targets(positive_cols: Tensor, num_columns: int, dtype: torch.dtype) -> Tensor:
    """(R,) positive columns (-1: none) -> (R, C) 0/1 targets."""
    target = torch.zeros((positive_cols.shape[0], num_columns), dtype=dtype, device=positive_cols.device)
    has = (positive_cols >= 0).to(dtype).unsqueeze(1)  # (R, 1)
    return target.scatter_(1, positive_cols.clamp(min=0).unsqueeze(1), has)


class ActivationParameters(nn.Module):
    """The learnable parameters of one activation, as one module shared by the loss(es) and test-time scoring."""

    @abstractmethod
    def scalars(self) -> dict[str, float]:
        """Current values by name, for the training log (e.g. ``{"aglu_lambda": 0.93}``)."""


def activation_scalars(model: nn.Module) -> dict[str, float]:
    """The current values of every activation parameter module in ``model`` (each shared module once)."""
    values: dict[str, float] = {}
    for module in model.modules():  # modules() yields a module shared by several cascade stages once
        if isinstance(module, ActivationParameters):
            values.update(module.scalars())
    return values


# How ``init_classifier`` sets the last classification layer's weights (its bias is always ``init_bias``).
INITS = ("constant", "normal")
# How test-time scores are computed: "own" applies this activation; "softmax" applies a softmax over all
# K + 1 logits whatever the trained activation, as mmdetection 2.x ``BBoxHead.get_bboxes`` scores a head
# trained with a plain ``CrossEntropyLoss(use_sigmoid=True)`` (paper-notes 3.2).
SCORINGS = ("own", "softmax")


class Activation(ABC):
    """One classification activation: probabilities, log-probabilities, test scores and classifier init.

    Args:
        init_weight: ``init="constant"``: the value of every weight of the last classification layer;
            ``init="normal"``: the standard deviation of its zero-mean normal weights.
        init_bias: the value of every bias of that layer.
        init: "constant" (the official ``Constant`` init_cfg of ``fc_cls``) or "normal" (mmdet's default
            ``Normal(std=0.01)``, used by configs that set no init_cfg, e.g. the official EQL sigmoid runs).
        scoring: "own" (test scores from this activation) or "softmax" (softmax over the K + 1 logits).
    """

    name: ClassVar[str]
    kind: ClassVar[str]  # "binary" or "softmax": what a loss accepts
    is_binary: ClassVar[bool]
    default_init_weight: ClassVar[float] = 0.001
    default_init_bias: ClassVar[float]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            ACTIVATIONS[cls.name] = cls

    def __init__(
        self,
        *,
        init_weight: float | None = None,
        init_bias: float | None = None,
        init: str = "constant",
        scoring: str = "own",
    ) -> None:
        self.init_weight = float(self.default_init_weight if init_weight is None else init_weight)
        self.init_bias = float(self.default_init_bias if init_bias is None else init_bias)
        for arg in ("init_weight", "init_bias"):
            if not math.isfinite(getattr(self, arg)):
                raise ValueError(f"{type(self).__name__}: {arg} must be finite, got {getattr(self, arg)}")
        if init not in INITS:
            raise ValueError(f"activation.init={init!r} is unknown; use one of {', '.join(INITS)}")
        if scoring not in SCORINGS:
            raise ValueError(f"activation.scoring={scoring!r} is unknown; use one of {', '.join(SCORINGS)}")
        if init == "normal" and self.init_weight < 0:
            raise ValueError(f"activation.init=normal takes init_weight as a standard deviation, got {init_weight}")
        self.init = init
        self.scoring = scoring

    @property
    def module(self) -> ActivationParameters | None:
        """The learnable parameters this activation carries (None: parameter-free)."""
        return None

    def test_scores(self, logits: Tensor, *, background: bool) -> Tensor:
        """(R, C) logits -> (R, K) test-time scores, as ``scoring`` says (``scores`` for "own")."""
        if self.scoring == "own":
            return self.scores(logits, background=background)
        if not background:
            raise ValueError("activation.scoring=softmax needs the background column: logits of width K + 1")
        return torch.softmax(upcast_logits(logits), dim=-1)[:, 1:]  # (R, K): background column 0 dropped

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
        (``init="constant"``, the official ``Constant`` init of ``fc_cls``) or draw it from N(0, init_weight^2)
        (``init="normal"``, mmdet's default), and every bias to ``init_bias``."""
        weight = getattr(layer, "weight", None)
        bias = getattr(layer, "bias", None)
        if not isinstance(weight, Tensor) or not isinstance(bias, Tensor):
            raise TypeError(
                f"init_classifier needs a layer with a weight and a bias (e.g. nn.Linear(..., bias=True)), "
                f"got {type(layer).__name__}"
            )
        with torch.no_grad():
            if self.init == "normal":
                nn.init.normal_(weight, mean=0.0, std=self.init_weight)
            else:
                weight.fill_(self.init_weight)
            bias.fill_(self.init_bias)

    def _key(self) -> tuple[object, ...]:
        return (type(self).__name__, self.init_weight, self.init_bias, self.init, self.scoring)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(init_weight={self.init_weight}, init_bias={self.init_bias}, "
            f"init={self.init!r}, scoring={self.scoring!r})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Activation) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class BinaryActivation(Activation):
    """An elementwise activation: every logit column is an independent binary classifier.

    Its binary cross-entropy in ``Numerics.stable`` is computed in log space from ``log_prob`` and
    ``log_survival`` (no clamps); in ``Numerics.official`` it is torch's BCE on ``official_prob``, the
    probabilities as the official code computes them (its logit clamp included). Subclasses override either
    for a fused or an exactly transcribed form.
    """

    kind = "binary"
    is_binary = True
    # The official code clamps the logits to this range before the probability (``Numerics.official``).
    official_logit_clamp: ClassVar[tuple[float, float] | None] = None
    # The official plain cross-entropy head clamps its reduced loss to this range (GumbelCE: [0, 20]).
    official_ce_loss_clamp: ClassVar[tuple[float, float] | None] = None

    @abstractmethod
    def log_survival(self, logits: Tensor) -> Tensor:
        """(..., C) -> (..., C) log(1 - p), computed without cancellation."""

    def scores(self, logits: Tensor, *, background: bool) -> Tensor:
        # Background column (if any) is dropped: the official heads score each class independently.
        return self.prob(logits[:, 1:] if background else logits)  # (R, K)

    def official_prob(self, logits: Tensor) -> Tensor:
        """p(q) as the official code evaluates it, ``official_logit_clamp`` included."""
        clamp = self.official_logit_clamp
        return self.prob(logits if clamp is None else logits.clamp(*clamp))

    def binary_cross_entropy(self, logits: Tensor, target: Tensor, *, numerics: Numerics | str) -> Tensor:
        """(R, C) float logits and (R, C) 0/1 targets -> (R, C) per-element binary cross-entropy."""
        if Numerics(numerics) is Numerics.official:
            return F.binary_cross_entropy(self.official_prob(logits), target, reduction="none")
        # -log p for positives, -log(1 - p) for negatives; where() keeps an unused infinite term out of the sum
        return -torch.where(target > 0, self.log_prob(logits), self.log_survival(logits))

    def binary_cross_entropy_sum(
        self, logits: Tensor, positive_cols: Tensor, *, drop: Tensor | None, numerics: Numerics | str
    ) -> Tensor:
        """Sum of the binary cross-entropy over the kept elements (not normalised).

        Args:
            logits: (R, C) float32/float64 logits (autocast off).
            positive_cols: (R,) int64 column whose target is 1, or -1 when the row has none.
            drop: optional bool mask broadcastable to (R, C); True drops that *negative* term (weight 0).
            numerics: ``Numerics`` (or its value).
        """
        target = one_hot_targets(positive_cols, logits.shape[1], logits.dtype)  # (R, C)
        per_element = self.binary_cross_entropy(logits, target, numerics=numerics)  # (R, C)
        if drop is not None:
            per_element = per_element * (~drop | target.bool()).to(logits.dtype)
        return per_element.sum()


def get_activation(name: str) -> Activation:
    """The activation called ``name`` (a key of ``ACTIVATIONS``) with its official defaults."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
