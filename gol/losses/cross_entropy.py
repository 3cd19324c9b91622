"""Plain cross-entropy: softmax CE over K + 1 classes, or binary CE with a sigmoid / Gumbel / probit activation.

Shape shorthand:
    R: RoIs. K: foreground categories; labels in [0, K], 0 = background.
    Softmax and the default binary layout use K + 1 logits, background at column 0 (column k is label k).
    ``background_column=False`` (binary activations only) uses K logits (column k is label k + 1).

Softmax (``Softmax`` activation): ``F.cross_entropy(logits, labels)``, exactly torchvision's
``fastrcnn_loss`` classification term (and mmdet's ``CrossEntropyLoss(use_sigmoid=False)``).

Binary (``Sigmoid`` / ``Gumbel`` / ``Probit``): each RoI's label is one-hot encoded over the K + 1 columns, so a
background RoI has target 1 on the background column, as in mmdet's ``CrossEntropyLoss(use_sigmoid=True)``
and the official ``GumbelCE`` head; the loss is summed over the columns and averaged over RoIs
(paper-notes 3.2, 3.3). With ``numerics="official"`` the Gumbel head also clamps its logits to [-4, 10] and
the reduced loss to [0, 20], as ``GumbelCE`` does (the latter zeroes every gradient of a batch whose loss
exceeds 20).

Test-time scores: softmax over K + 1 columns with background dropped, or the binary activation on the K
foreground columns. (mmdet 2.x scored its sigmoid-trained head with a softmax; this package always scores
with the activation that was trained, paper-notes 3.2.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gol.activations import Activation, BinaryActivation, Numerics, upcast_logits
from gol.data.stats import CategoryStats
from gol.losses.base import ClassificationLoss
from gol.losses.binary import binary_cross_entropy, positive_columns

__all__ = ["CrossEntropyLoss", "binary_ce_loss", "softmax_ce_loss"]


def softmax_ce_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Softmax cross-entropy, mean over RoIs: (R, K + 1) logits, (R,) labels in [0, K] -> scalar."""
    q = upcast_logits(logits)
    with torch.autocast(device_type=q.device.type, enabled=False):
        return F.cross_entropy(q, labels)


def binary_ce_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    activation: BinaryActivation,
    background_column: bool = True,
    numerics: Numerics | str = Numerics.stable,
) -> Tensor:
    """Binary cross-entropy summed over columns, mean over RoIs.

    Args:
        logits: (R, K + 1) with ``background_column`` (background at column 0), else (R, K).
        labels: (R,) int64 in [0, K].
        activation: a binary activation (Sigmoid, Gumbel, Probit, ...).
        background_column: train the background column as one more binary output (official heads).
        numerics: "stable" or "official"; official Gumbel also clamps the reduced loss to [0, 20].
    """
    numerics = Numerics(numerics)
    loss = binary_cross_entropy(
        logits,
        positive_columns(labels, background_column=background_column),
        activation=activation,
        numerics=numerics,
    )
    clamp = activation.official_ce_loss_clamp  # GumbelCE clamps the reduced scalar loss (paper-notes 3.3)
    if numerics is Numerics.official and clamp is not None:
        loss = loss.clamp(*clamp)
    return loss


class CrossEntropyLoss(ClassificationLoss):
    """Softmax or binary cross-entropy (the "Sigmoid", "Softmax" and "Gumbel" rows of the activation table).

    Args:
        activation: any activation (softmax -> softmax CE; sigmoid/gumbel/probit -> binary CE).
        num_classes: K.
        stats: not used by this loss (accepted for the common constructor; checked against num_classes).
        background_column: binary activations only: K + 1 logits with a trained background column
            (official, default) or K logits where background RoIs have all-zero targets.
        numerics: "stable" (default) or "official" (see ``gol.losses.base.Numerics``).
    """

    activation_kinds = ("binary", "softmax")

    def __init__(
        self,
        *,
        activation: Activation,
        num_classes: int,
        stats: CategoryStats | None = None,
        background_column: bool = True,
        numerics: Numerics | str = Numerics.stable,
    ) -> None:
        if not background_column and not activation.is_binary:
            raise ValueError(
                "CrossEntropyLoss: background_column=False needs a binary activation (softmax needs K + 1)"
            )
        super().__init__(
            activation=activation,
            num_classes=num_classes,
            num_logits=num_classes + 1 if background_column else num_classes,
        )
        self._check_stats(stats)
        self.background_column = background_column
        self.numerics = Numerics(numerics)

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        if not isinstance(self.activation, BinaryActivation):
            return softmax_ce_loss(logits, labels)
        return binary_ce_loss(
            logits,
            labels,
            activation=self.activation,
            background_column=self.background_column,
            numerics=self.numerics,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, background_column={self.background_column}, numerics={self.numerics.value}"
