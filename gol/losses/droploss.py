"""DropLoss (Hsieh et al., AAAI 2021) and GOL = DropLoss weights with the Gumbel activation.

Shape shorthand:
    R: RoIs. K: foreground categories; K logits, column k is label k + 1 (no background logit).
    Labels in [0, K], 0 = background; a background RoI has all-zero targets.

The official code (paper-notes 3.5) keeps EQL's weights for foreground RoIs and, in addition, drops the
negative tail-class terms of *background* RoIs at random:

    tail_j = f_j < lambda                            (K,)
    r      = mean over foreground RoIs of tail[gt]   scalar; NaN when the batch has no foreground RoI
    U      ~ Uniform[0, 1)                           (R, K)
    drop   = tail_j and (fg_r or (bg_r and U_rj > r))
    w_rj   = 0 if drop_rj and y_rj = 0, else 1       (positives are never dropped)
    L      = sum_rj w_rj BCE(p_rj, y_rj) / R

A background RoI keeps each tail negative with probability r: the more tail objects in the batch, the more
the tail logits are pushed down. With no foreground RoI, ``U > NaN`` is false and nothing is dropped. GOL
(the paper's loss) is this with the Gumbel activation, lambda 0.0011 on LVIS v1 (0.00177 on v0.5).

The pure functions take the uniform noise ``U`` as an argument; ``DropLoss`` draws it from its seeded stream
on the logits' device (state checkpointed with the module).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gol.activations import Activation, BinaryActivation, Numerics
from gol.data.stats import CategoryStats
from gol.losses.binary import binary_cross_entropy, positive_columns
from gol.losses.eql import LAMBDA_LVIS_V1, tail_classes
from gol.losses.rng import SeededLoss

__all__ = ["DropLoss", "drop_loss", "drop_ratio", "droploss_drop"]


def drop_ratio(labels: Tensor, *, tail: Tensor) -> Tensor:
    """r: fraction of foreground RoIs whose class is a tail class (0-dim float32; NaN without foreground)."""
    fg = labels > 0
    tail_fg = tail[(labels - 1).clamp(min=0)] & fg  # (R,)
    return tail_fg.sum().to(torch.float32) / fg.sum().to(torch.float32)


def droploss_drop(labels: Tensor, *, tail: Tensor, uniform: Tensor) -> Tensor:
    """(R,) labels, (K,) tail mask, (R, K) uniform noise in [0, 1) -> (R, K) bool negative terms dropped."""
    fg = labels > 0
    # Foreground rows compare against -1 (always dropped on tail columns, EQL); background rows against r.
    threshold = torch.where(fg, torch.full_like(fg, -1.0, dtype=torch.float32), drop_ratio(labels, tail=tail))
    drop = torch.gt(uniform, threshold.to(uniform.dtype).unsqueeze(1))  # (R, K)
    return drop.logical_and_(tail.unsqueeze(0))


def drop_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    activation: BinaryActivation,
    tail: Tensor,
    uniform: Tensor,
    numerics: Numerics | str = Numerics.stable,
) -> Tensor:
    """DropLoss / GOL: (R, K) logits, (R,) labels, (K,) tail mask, (R, K) uniform noise -> scalar loss."""
    if uniform.shape != logits.shape:
        raise ValueError(f"uniform must have the shape of logits {tuple(logits.shape)}, got {tuple(uniform.shape)}")
    return binary_cross_entropy(
        logits,
        positive_columns(labels, background_column=False),
        activation=activation,
        drop=droploss_drop(labels, tail=tail.to(labels.device), uniform=uniform),
        numerics=numerics,
    )


class DropLoss(SeededLoss):
    """DropLoss with a sigmoid, Gumbel or probit activation; with Gumbel this is GOL.

    Args:
        activation: Sigmoid, Gumbel (GOL) or Probit.
        num_classes: K.
        stats: training-set statistics (required: image frequencies define the tail classes).
        lambda_: tail threshold on image frequency, in (0, 1). Default 0.0011 (GOL, LVIS v1); the original
            DropLoss configs use 0.00177.
        seed: seed of the stream that draws the drops (state saved in ``state_dict`` as extra state).
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
        seed: int = 0,
        numerics: Numerics | str = Numerics.stable,
    ) -> None:
        super().__init__(activation=activation, num_classes=num_classes, num_logits=num_classes)
        checked = self._require_stats(stats)
        tail = tail_classes(checked.image_frequency, lambda_)
        self._init_stream(seed)
        self.lambda_ = float(lambda_)
        self.numerics = Numerics(numerics)
        self.register_buffer("tail", tail, persistent=True)

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        assert isinstance(self.activation, BinaryActivation)
        generator = self.next_generator(logits.device)
        uniform = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float32)
        return drop_loss(
            logits, labels, activation=self.activation, tail=self.tail, uniform=uniform, numerics=self.numerics
        )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, lambda_={self.lambda_}, tail_classes={int(self.tail.sum())}, "
            f"seed={self.seed}, numerics={self.numerics.value}"
        )
