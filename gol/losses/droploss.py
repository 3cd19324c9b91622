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

Officially r and U are per GPU, over its 4 images. With ``group_sizes`` (RoIs per group of consecutive rows),
each group gets its own r (``group_drop_ratios``); L stays the sum over all rows divided by R.

The pure functions take the uniform noise ``U`` as an argument; ``DropLoss`` draws it from its seeded stream
on the logits' device, one generator per group of ``images_per_group`` images (state checkpointed with the
module; see ``gol.losses.rng``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gol.activations import Activation, BinaryActivation, Numerics
from gol.data.stats import CategoryStats
from gol.losses.binary import binary_cross_entropy, positive_columns
from gol.losses.eql import LAMBDA_LVIS_V1, tail_classes
from gol.losses.groups import group_index
from gol.losses.rng import SeededLoss, make_generator

__all__ = ["DropLoss", "drop_loss", "drop_ratio", "droploss_drop", "group_drop_ratios"]


def drop_ratio(labels: Tensor, *, tail: Tensor) -> Tensor:
    """r: fraction of foreground RoIs whose class is a tail class (0-dim float32; NaN without foreground)."""
    fg = labels > 0
    tail_fg = tail[(labels - 1).clamp(min=0)] & fg  # (R,)
    return tail_fg.sum().to(torch.float32) / fg.sum().to(torch.float32)


def group_drop_ratios(labels: Tensor, *, tail: Tensor, group_sizes: Sequence[int]) -> Tensor:
    """(G,) float32 r of each group of ``group_sizes`` consecutive rows (NaN for a group without foreground)."""
    _check_groups(labels, group_sizes)
    fg = labels > 0
    tail_fg = tail[(labels - 1).clamp(min=0)] & fg  # (R,)
    index = group_index(group_sizes, labels.device)  # (R,)
    zeros = torch.zeros(len(group_sizes), dtype=torch.float32, device=labels.device)
    return zeros.index_add(0, index, tail_fg.to(torch.float32)) / zeros.index_add(0, index, fg.to(torch.float32))


def droploss_drop(labels: Tensor, *, tail: Tensor, uniform: Tensor, group_sizes: Sequence[int] | None = None) -> Tensor:
    """(R,) labels, (K,) tail mask, (R, K) uniform noise in [0, 1) -> (R, K) bool negative terms dropped.

    ``group_sizes``: RoIs of each group of consecutive rows, each with its own r (None: one group).
    """
    fg = labels > 0
    if group_sizes is None:
        ratio = drop_ratio(labels, tail=tail)  # 0-dim
    else:
        ratio = group_drop_ratios(labels, tail=tail, group_sizes=group_sizes)[group_index(group_sizes, labels.device)]
    # Foreground rows compare against -1 (always dropped on tail columns, EQL); background rows against r.
    threshold = torch.where(fg, torch.full_like(fg, -1.0, dtype=torch.float32), ratio)
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
    group_sizes: Sequence[int] | None = None,
) -> Tensor:
    """DropLoss / GOL: (R, K) logits, (R,) labels, (K,) tail mask, (R, K) uniform noise -> scalar loss.

    ``group_sizes``: RoIs of each group of consecutive rows (one official GPU's batch each), each with its own r;
    None is one group. The loss is the sum over all rows / R: with equal groups, the mean of the groups' losses.
    """
    if uniform.shape != logits.shape:
        raise ValueError(f"uniform must have the shape of logits {tuple(logits.shape)}, got {tuple(uniform.shape)}")
    drop = droploss_drop(labels, tail=tail.to(labels.device), uniform=uniform, group_sizes=group_sizes)
    return binary_cross_entropy(
        logits,
        positive_columns(labels, background_column=False),
        activation=activation,
        drop=drop,
        numerics=numerics,
    )


def _check_groups(labels: Tensor, group_sizes: Sequence[int]) -> None:
    if any(n < 0 for n in group_sizes) or sum(group_sizes) != labels.shape[0]:
        raise ValueError(
            f"group_sizes must be non-negative RoI counts summing to the {labels.shape[0]} rows, got {list(group_sizes)}"
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
        images_per_group: images whose RoIs share r and a draw, as one official GPU's (4 in every released
            config); None: all images of the process's step together. Needs ``rois_per_image`` in the call
            (the RoI heads pass it); without it the whole call is one group.

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
        images_per_group: int | None = 4,
    ) -> None:
        super().__init__(activation=activation, num_classes=num_classes, num_logits=num_classes)
        checked = self._require_stats(stats)
        tail = tail_classes(checked.image_frequency, lambda_)
        self._init_random(seed=seed, images_per_group=images_per_group)
        self.lambda_ = float(lambda_)
        self.numerics = Numerics(numerics)
        self.register_buffer("tail", tail, persistent=True)

    def _grouped_loss(self, logits: Tensor, labels: Tensor, *, group_sizes: list[int], seeds: list[int]) -> Tensor:
        assert isinstance(self.activation, BinaryActivation)
        device, k = logits.device, logits.shape[1]
        uniform = torch.cat(
            [
                torch.rand((n, k), generator=make_generator(seed, device), device=device, dtype=torch.float32)
                for n, seed in zip(group_sizes, seeds)
            ]
        )  # (R, K)
        return drop_loss(
            logits,
            labels,
            activation=self.activation,
            tail=self.tail,
            uniform=uniform,
            numerics=self.numerics,
            group_sizes=group_sizes,
        )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, lambda_={self.lambda_}, tail_classes={int(self.tail.sum())}, "
            f"seed={self.seed}, numerics={self.numerics.value}, images_per_group={self.images_per_group}"
        )
