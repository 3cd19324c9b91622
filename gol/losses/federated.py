"""Federated loss (Zhou et al., "Probabilistic two-stage detection", 2021) with any binary activation.

Shape shorthand:
    R: RoIs. K: foreground categories; K logits, column k is label k + 1 (no background logit).
    Labels in [0, K], 0 = background; a background RoI has all-zero targets.

Each step trains only a set S of classes, the same for every RoI (paper-notes 3.6):

    S = unique(labels)                                  (may contain background, which counts towards |S|)
    if |S| < 50: add 50 - |S| foreground classes drawn without replacement with probability
                 proportional to image_count ** 0.5, excluding those already in S
    w_rj = 1 if class j in S else 0                     (so GT classes always count)
    L    = sum_rj w_rj BCE(p_rj, y_rj) / R

As in the authors' mmdet port, background is never drawn (CenterNet2 leaves it in the draw with weight 1; the
difference is at most one foreground class per step). When fewer classes than requested have a non-zero
weight, all of them are taken (the official code would fail).

Officially S is per GPU, over its 4 images. ``FederatedLoss`` splits the RoIs into groups of
``images_per_group`` images, each with its own S drawn from its own generator (``federated_loss`` takes a
(G, K) class set with ``group_sizes``); L stays the sum over all rows divided by R. It draws from its seeded
stream on ``sample_weight``'s device (state checkpointed with the module; see ``gol.losses.rng``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gol.activations import Activation, BinaryActivation, Numerics
from gol.data.stats import CategoryStats
from gol.losses.binary import binary_cross_entropy, positive_columns
from gol.losses.groups import group_index
from gol.losses.rng import SeededLoss, make_generator

__all__ = ["FederatedLoss", "federated_classes", "federated_loss"]


def federated_classes(
    labels: Tensor, *, sample_weight: Tensor, num_sampled: int, generator: torch.Generator | None
) -> Tensor:
    """The classes S trained this step.

    Args:
        labels: (R,) int64 in [0, K].
        sample_weight: (K,) non-negative sampling weights (official: image_count ** 0.5).
        num_sampled: target |S| (official: 50); background, if present, counts towards it.
        generator: generator on ``sample_weight``'s device (None: torch's default generator).

    Returns:
        (K,) bool, True for classes in S.
    """
    num_classes = sample_weight.shape[0]
    appeared = torch.unique(labels)
    gt = appeared[appeared > 0] - 1  # foreground classes present, as column indices
    classes = torch.zeros(num_classes, dtype=torch.bool, device=sample_weight.device)
    classes[gt.to(classes.device)] = True
    missing = num_sampled - appeared.numel()
    if missing > 0:
        prob = sample_weight.to(torch.float32).masked_fill(classes, 0.0)  # (K,)
        missing = min(missing, int((prob > 0).sum()))
        if missing > 0:
            more = torch.multinomial(prob, missing, replacement=False, generator=generator)
            classes[more] = True
    return classes


def federated_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    activation: BinaryActivation,
    classes: Tensor,
    numerics: Numerics | str = Numerics.stable,
    group_sizes: Sequence[int] | None = None,
) -> Tensor:
    """Federated loss: (R, K) logits, (R,) labels, bool classes S -> scalar (sum over K, mean over R).

    ``classes`` is (K,), the same S for every RoI, or (G, K) with ``group_sizes`` (RoIs of each group of
    consecutive rows, one official GPU's batch each): group g's rows train ``classes[g]``. The loss is the sum
    over all rows / R: with equal groups, the mean of the groups' losses.
    """
    classes = classes.to(logits.device)
    if group_sizes is None:
        if classes.dim() != 1:
            raise ValueError(f"classes must be (K,) without group_sizes, got shape {tuple(classes.shape)}")
        drop = ~classes.unsqueeze(0)  # (1, K): the same columns for every RoI
    else:
        if classes.dim() != 2 or classes.shape[0] != len(group_sizes) or sum(group_sizes) != logits.shape[0]:
            raise ValueError(
                f"with group_sizes {list(group_sizes)} (summing to the {logits.shape[0]} rows), classes must be "
                f"({len(group_sizes)}, K), got shape {tuple(classes.shape)}"
            )
        drop = ~classes[group_index(group_sizes, logits.device)]  # (R, K): each row its group's columns
    return binary_cross_entropy(
        logits,
        positive_columns(labels, background_column=False),
        activation=activation,
        drop=drop,
        numerics=numerics,
    )


class FederatedLoss(SeededLoss):
    """Federated loss with a sigmoid, Gumbel or probit activation over K logits.

    Args:
        activation: Sigmoid, Gumbel or Probit.
        num_classes: K.
        stats: training-set statistics (required: image counts set the sampling weights).
        num_sampled_classes: |S| per step (official ``FED_LOSS_NUM_CAT`` = 50).
        frequency_power: sampling weight = image_count ** power (official ``FED_LOSS_FREQ_WEIGHT`` = 0.5).
        seed: seed of the stream that draws S (state saved in ``state_dict`` as extra state).
        numerics: "stable" (default) or "official".
        images_per_group: images whose RoIs share S and a draw, as one official GPU's (4 in every released
            config); None: all images of the process's step together. Needs ``rois_per_image`` in the call
            (the RoI heads pass it); without it the whole call is one group.

    Buffers:
        sample_weight: (K,) float32 image_count ** frequency_power.
    """

    activation_kinds = ("binary",)
    sample_weight: Tensor

    def __init__(
        self,
        *,
        activation: Activation,
        num_classes: int,
        stats: CategoryStats | None = None,
        num_sampled_classes: int = 50,
        frequency_power: float = 0.5,
        seed: int = 0,
        numerics: Numerics | str = Numerics.stable,
        images_per_group: int | None = 4,
    ) -> None:
        super().__init__(activation=activation, num_classes=num_classes, num_logits=num_classes)
        checked = self._require_stats(stats)
        if isinstance(num_sampled_classes, bool) or not isinstance(num_sampled_classes, int) or num_sampled_classes < 1:
            raise ValueError(f"num_sampled_classes must be a positive int (official: 50), got {num_sampled_classes!r}")
        if not (isinstance(frequency_power, (int, float)) and 0.0 <= frequency_power < float("inf")):
            raise ValueError(f"frequency_power must be a finite number >= 0 (official: 0.5), got {frequency_power!r}")
        self._init_random(seed=seed, images_per_group=images_per_group)
        self.num_sampled_classes = num_sampled_classes
        self.frequency_power = float(frequency_power)
        self.numerics = Numerics(numerics)
        weight = checked.image_count.to(torch.float64).pow(self.frequency_power).to(torch.float32)
        self.register_buffer("sample_weight", weight, persistent=True)

    def _grouped_loss(self, logits: Tensor, labels: Tensor, *, group_sizes: list[int], seeds: list[int]) -> Tensor:
        assert isinstance(self.activation, BinaryActivation)
        device = self.sample_weight.device
        classes = torch.stack(
            [
                federated_classes(
                    part,
                    sample_weight=self.sample_weight,
                    num_sampled=self.num_sampled_classes,
                    generator=make_generator(seed, device),
                )
                if part.numel()
                else torch.zeros_like(self.sample_weight, dtype=torch.bool)  # a group without RoIs trains nothing
                for part, seed in zip(torch.split(labels, group_sizes), seeds)
            ]
        )  # (G, K)
        return federated_loss(
            logits,
            labels,
            activation=self.activation,
            classes=classes,
            numerics=self.numerics,
            group_sizes=group_sizes,
        )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, num_sampled_classes={self.num_sampled_classes}, "
            f"frequency_power={self.frequency_power}, seed={self.seed}, numerics={self.numerics.value}, "
            f"images_per_group={self.images_per_group}"
        )
