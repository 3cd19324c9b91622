"""Equalization loss (EQL; Tan et al., CVPR 2020) with any binary activation.

Shape shorthand:
    R: RoIs. K: foreground categories; K logits, column k is label k + 1 (no background logit).
    Labels in [0, K], 0 = background; a background RoI has all-zero targets.

    L = -(1/R) sum_r sum_j w_rj [y_rj log p_rj + (1 - y_rj) log(1 - p_rj)]
    w_rj = 1 - E(r) T_lambda(f_j) (1 - y_rj)

E(r) = 1 for a foreground RoI; T_lambda(f_j) = 1 for a *tail* class, whose image frequency f_j (fraction of
training images containing j, ``CategoryStats.image_frequency``) is below lambda. So a foreground RoI does not
push down the logits of tail classes (paper-notes 3.4). Official lambda: 0.0011 on LVIS v1 (815 tail
classes), 0.00177 on LVIS v0.5. Test scores: the activation on the K columns.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gol.activations import Activation, BinaryActivation, Numerics
from gol.data.stats import CategoryStats
from gol.losses.base import ClassificationLoss
from gol.losses.binary import binary_cross_entropy, positive_columns

__all__ = ["EQLLoss", "eql_drop", "eql_loss", "tail_classes"]

LAMBDA_LVIS_V1 = 0.0011  # official EQL/GOL value for LVIS v1 (paper-notes 3.4)


def tail_classes(image_frequency: Tensor, lambda_: float) -> Tensor:
    """(K,) image frequencies -> (K,) bool, True where f_j < lambda (EQL's T_lambda)."""
    if not (isinstance(lambda_, (int, float)) and not isinstance(lambda_, bool) and 0.0 < lambda_ < 1.0):
        raise ValueError(f"lambda_ must be a number in (0, 1) (official: 0.0011 for LVIS v1), got {lambda_!r}")
    return image_frequency.to(torch.float64) < lambda_


def eql_drop(labels: Tensor, *, tail: Tensor) -> Tensor:
    """(R,) labels, (K,) tail mask -> (R, K) bool: negative terms EQL removes (foreground RoI x tail class)."""
    return (labels > 0).unsqueeze(1) & tail.unsqueeze(0)  # (R, K)


def eql_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    activation: BinaryActivation,
    tail: Tensor,
    numerics: Numerics | str = Numerics.stable,
) -> Tensor:
    """EQL: (R, K) logits, (R,) labels in [0, K], (K,) bool tail mask -> scalar (sum over K, mean over R)."""
    return binary_cross_entropy(
        logits,
        positive_columns(labels, background_column=False),
        activation=activation,
        drop=eql_drop(labels, tail=tail.to(labels.device)),
        numerics=numerics,
    )


class EQLLoss(ClassificationLoss):
    """EQL with a sigmoid, Gumbel or probit activation over K logits.

    Args:
        activation: Sigmoid, Gumbel or Probit.
        num_classes: K.
        stats: training-set statistics (required: image frequencies define the tail classes).
        lambda_: tail threshold on image frequency, in (0, 1). Default 0.0011 (official, LVIS v1).
        numerics: "stable" (default) or "official".

    Buffers:
        tail: (K,) bool, classes with image frequency below ``lambda_``.
    """

    activation_kinds = ("binary",)
    tail: Tensor

    def __init__(
        self,
        *,
        activation: Activation,
        num_classes: int,
        stats: CategoryStats | None = None,
        lambda_: float = LAMBDA_LVIS_V1,
        numerics: Numerics | str = Numerics.stable,
    ) -> None:
        super().__init__(activation=activation, num_classes=num_classes, num_logits=num_classes)
        checked = self._require_stats(stats)
        tail = tail_classes(checked.image_frequency, lambda_)
        self.lambda_ = float(lambda_)
        self.numerics = Numerics(numerics)
        self.register_buffer("tail", tail, persistent=True)

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        assert isinstance(self.activation, BinaryActivation)
        return eql_loss(logits, labels, activation=self.activation, tail=self.tail, numerics=self.numerics)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, lambda_={self.lambda_}, tail_classes={int(self.tail.sum())}, "
            f"numerics={self.numerics.value}"
        )
