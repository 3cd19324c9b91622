"""Binary cross-entropy for the elementwise activations (sigmoid, Gumbel, probit), shared by every binary loss.

Shape shorthand:
    R: RoIs. C: logit columns (K + 1 with background at column 0, or K without it).

The losses in this package differ only in *which negative terms they drop* (weight 0) and in the layout of
the columns; the positive term of each RoI is always kept. So one function, ``binary_cross_entropy``, takes
the column of each RoI's positive target and a boolean ``drop`` mask, and evaluates
``sum_{r, j} w_rj * BCE(p(q_rj), y_rj) / R`` with ``w_rj = 0`` where ``drop`` and ``y_rj = 0``, else 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from gol.activations import BinaryActivation, probit_log_prob, upcast_logits
from gol.losses.base import Numerics
from gol.losses.gumbel_fused import gumbel_binary_cross_entropy_sum

__all__ = [
    "OFFICIAL_GUMBEL_CLAMP",
    "OFFICIAL_PROBIT_CLAMP",
    "binary_cross_entropy",
    "one_hot_targets",
    "positive_columns",
]

OFFICIAL_GUMBEL_CLAMP = (-4.0, 10.0)  # every official Gumbel loss clamps its logits (paper-notes 3.3)
OFFICIAL_PROBIT_CLAMP = (-5.0, 5.0)  # the official 'normal' branch of DropLoss/FedLoss
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def positive_columns(labels: Tensor, *, background_column: bool) -> Tensor:
    """(R,) labels in [0, K] -> (R,) column of each RoI's positive target, -1 when it has none.

    With a background column (C = K + 1) every RoI has one: column ``label`` (0 for background RoIs, as the
    official ``use_sigmoid=True`` / ``GumbelCE`` heads train the background channel). Without one (C = K),
    foreground label k is column k - 1 and background RoIs have all-zero targets.
    """
    return labels if background_column else labels - 1


def one_hot_targets(positive_cols: Tensor, num_columns: int, dtype: torch.dtype) -> Tensor:
    """(R,) positive columns (-1: none) -> (R, C) 0/1 targets."""
    target = torch.zeros((positive_cols.shape[0], num_columns), dtype=dtype, device=positive_cols.device)
    has = (positive_cols >= 0).to(dtype).unsqueeze(1)  # (R, 1)
    return target.scatter_(1, positive_cols.clamp(min=0).unsqueeze(1), has)


def binary_cross_entropy(
    logits: Tensor,
    positive_cols: Tensor,
    *,
    activation: BinaryActivation,
    drop: Tensor | None = None,
    numerics: Numerics | str = Numerics.stable,
) -> Tensor:
    """Binary cross-entropy, summed over classes and averaged over RoIs.

    Args:
        logits: (R, C) float logits (any float dtype; computed in at least float32, autocast disabled).
        positive_cols: (R,) int64 column whose target is 1, or -1 (see ``positive_columns``).
        activation: a ``BinaryActivation`` (Sigmoid, Gumbel or Probit).
        drop: optional bool mask broadcastable to (R, C) ((R, C) or (1, C)); True drops that negative term.
        numerics: ``"stable"`` or ``"official"`` (see ``gol.losses.base.Numerics``).

    Returns:
        Scalar tensor in float32 (float64 for float64 logits). R must be > 0.
    """
    numerics = Numerics(numerics)
    rows, cols = logits.shape
    q = upcast_logits(logits)
    with torch.autocast(device_type=q.device.type, enabled=False):
        if activation.name == "gumbel" and numerics is Numerics.stable:
            return gumbel_binary_cross_entropy_sum(q, positive_cols, drop=drop) / rows
        target = one_hot_targets(positive_cols, cols, q.dtype)  # (R, C)
        weight = None if drop is None else (~drop | target.bool()).to(q.dtype)  # (R, C)
        if activation.name == "sigmoid":
            # mmdet / detectron2 use binary_cross_entropy_with_logits in both modes
            per_element = F.binary_cross_entropy_with_logits(q, target, reduction="none")
        elif activation.name == "probit" and numerics is Numerics.stable:
            # -log Phi(s q) with s = +1 for positives, -1 for negatives
            per_element = -probit_log_prob(q * (2.0 * target - 1.0))
        elif activation.name == "probit":
            qc = q.clamp(*OFFICIAL_PROBIT_CLAMP)
            p = 0.5 + torch.erf(qc * _INV_SQRT2) / 2.0
            per_element = F.binary_cross_entropy(p, target, reduction="none")
        elif activation.name == "gumbel":
            qc = q.clamp(*OFFICIAL_GUMBEL_CLAMP)
            p = 1.0 / torch.exp(torch.exp(-qc))  # the official code's exact expression
            per_element = F.binary_cross_entropy(p, target, reduction="none")
        else:
            raise ValueError(f"binary_cross_entropy needs a binary activation, got {activation!r}")
        if weight is not None:
            per_element = per_element * weight
        return per_element.sum() / rows
