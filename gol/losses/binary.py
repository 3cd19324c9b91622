"""Binary cross-entropy for the elementwise activations (sigmoid, Gumbel, probit), shared by every binary loss.

Shape shorthand:
    R: RoIs. C: logit columns (K + 1 with background at column 0, or K without it).

The losses in this package differ only in *which negative terms they drop* (weight 0) and in the layout of
the columns; the positive term of each RoI is always kept. So one function, ``binary_cross_entropy``, takes
the column of each RoI's positive target and a boolean ``drop`` mask, and evaluates
``sum_{r, j} w_rj * BCE(p(q_rj), y_rj) / R`` with ``w_rj = 0`` where ``drop`` and ``y_rj = 0``, else 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gol.activations import BinaryActivation, Numerics, one_hot_targets, upcast_logits

__all__ = ["binary_cross_entropy", "one_hot_targets", "positive_columns"]


def positive_columns(labels: Tensor, *, background_column: bool) -> Tensor:
    """(R,) labels in [0, K] -> (R,) column of each RoI's positive target, -1 when it has none.

    With a background column (C = K + 1) every RoI has one: column ``label`` (0 for background RoIs, as the
    official ``use_sigmoid=True`` / ``GumbelCE`` heads train the background channel). Without one (C = K),
    foreground label k is column k - 1 and background RoIs have all-zero targets.
    """
    return labels if background_column else labels - 1


def binary_cross_entropy(
    logits: Tensor,
    positive_cols: Tensor,
    *,
    activation: BinaryActivation,
    drop: Tensor | None = None,
    numerics: Numerics | str = Numerics.stable,
) -> Tensor:
    """Binary cross-entropy, summed over classes and averaged over RoIs (the activation owns the maths).

    Args:
        logits: (R, C) float logits (any float dtype; computed in at least float32, autocast disabled).
        positive_cols: (R,) int64 column whose target is 1, or -1 (see ``positive_columns``).
        activation: a ``BinaryActivation`` (Sigmoid, Gumbel, Probit, ...).
        drop: optional bool mask broadcastable to (R, C) ((R, C) or (1, C)); True drops that negative term.
        numerics: ``"stable"`` or ``"official"`` (see ``gol.activations.Numerics``).

    Returns:
        Scalar tensor in float32 (float64 for float64 logits). R must be > 0.
    """
    if not isinstance(activation, BinaryActivation):
        raise ValueError(f"binary_cross_entropy needs a binary activation, got {activation!r}")
    q = upcast_logits(logits)
    with torch.autocast(device_type=q.device.type, enabled=False):
        return activation.binary_cross_entropy_sum(q, positive_cols, drop=drop, numerics=numerics) / q.shape[0]
