"""The classification-loss seam between the RoI head and the losses.

Shape shorthand:
    R: RoIs in the batch (all images of the step together).
    K: foreground categories; labels are in [0, K] with 0 = background (torchvision convention).
    L: ``num_logits``, the classifier width a loss asks for: K + 1 (background logit at column 0, column k is
       label k), K (foreground only, column k is label k + 1) or K + 2 (Seesaw; see ``gol.losses.seesaw``).

Every loss is "sum over classes, mean over RoIs" (mmdet's ``avg_factor`` = number of RoIs), returns a scalar,
and returns 0 with a (zero) gradient when R = 0. The RoI heads also pass ``rois_per_image`` (the RoIs of each
image, in row order); the stochastic losses use it to compute their batch statistics per group of images
(``gol.losses.groups``), the others ignore it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from gol.activations import ACTIVATIONS, Activation, Numerics
from gol.activations.calibration import Fracal
from gol.data.stats import CategoryStats
from gol.losses.groups import check_rois_per_image

__all__ = ["ClassificationLoss", "InvalidPairError", "Numerics"]


class InvalidPairError(ValueError):
    """An activation was combined with a loss that cannot use it (e.g. softmax with EQL)."""


class ClassificationLoss(nn.Module):
    """Base class of the RoI-head classification losses.

    Subclasses are built keyword-only as ``Loss(*, activation, num_classes, stats=None, <options>)``.

    Attributes:
        activation: the ``Activation`` shared with test-time scoring.
        activation_params: the activation's learnable parameters (``activation.module``), registered here;
            absent for parameter-free activations.
        num_classes: K.
        num_logits: width of the classifier output the loss expects.
    """

    # The kinds of activation the loss takes ("binary", "softmax"); ``valid_activations`` names them.
    activation_kinds: ClassVar[tuple[str, ...]]
    # Whether a test-time calibration (``calibration=fracal``) can rescore this loss's logits.
    calibratable: ClassVar[bool] = True

    @classmethod
    def valid_activations(cls) -> tuple[str, ...]:
        """Names of the registered activations of an accepted kind (``gol.activations.ACTIVATIONS``)."""
        return tuple(name for name, act in ACTIVATIONS.items() if act.kind in cls.activation_kinds)

    def __init__(self, *, activation: Activation, num_classes: int, num_logits: int) -> None:
        super().__init__()
        if not isinstance(activation, Activation):
            raise TypeError(
                f"{type(self).__name__}: activation must be a gol.activations.Activation, got {activation!r}"
            )
        if activation.kind not in self.activation_kinds:
            raise InvalidPairError(
                f"{type(self).__name__} cannot use the {activation.name} activation; "
                f"valid activations: {', '.join(self.valid_activations())}"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"{type(self).__name__}: num_classes must be a positive int (K), got {num_classes!r}")
        if activation.scoring == "softmax" and num_logits != num_classes + 1:
            raise InvalidPairError(
                f"activation.scoring=softmax scores the K + 1 logits of a head with a background column (loss=ce), "
                f"but {type(self).__name__} has {num_logits - num_classes:+d} columns beyond K; use activation.scoring=own"
            )
        self.activation = activation
        if activation.module is not None:
            # learnable activation parameters (AGLU): a submodule, so the model trains, checkpoints and moves them
            self.activation_params = activation.module
        self.num_classes = num_classes
        self.num_logits = num_logits
        self.calibration: Fracal | None = None  # test-time only: see ``calibrate``

    def calibrate(self, calibration: Fracal | None) -> None:
        """Score with ``calibration`` from now on (None: the activation's own scores); the loss is unchanged."""
        if calibration is not None:
            if not self.calibratable:
                raise ValueError(f"{type(self).__name__} has its own test-time scores; use calibration=none with it")
            if calibration.num_classes != self.num_classes:
                raise ValueError(
                    f"the calibration has {calibration.num_classes} classes but {type(self).__name__} {self.num_classes}"
                )
        self.calibration = calibration

    # -- helpers for subclasses ---------------------------------------------------------------------------
    def _require_stats(self, stats: CategoryStats | None) -> CategoryStats:
        """``stats``, checked; a loss that needs the class image frequencies calls this."""
        if stats is None:
            name = type(self).__name__
            raise ValueError(
                f"{name} needs stats (class image frequencies); pass stats=CategoryStats of the train split"
            )
        self._check_stats(stats)
        return stats

    def _check_stats(self, stats: CategoryStats | None) -> None:
        """Optional ``stats`` must be a ``CategoryStats`` of this loss's K classes."""
        if stats is None:
            return
        name = type(self).__name__
        if not isinstance(stats, CategoryStats):
            raise TypeError(f"{name}: stats must be a gol.data.stats.CategoryStats, got {type(stats).__name__}")
        if stats.num_classes != self.num_classes:
            raise ValueError(f"{name}: stats has {stats.num_classes} categories but num_classes={self.num_classes}")

    def _check_inputs(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Validate ``logits`` (R, L) and ``labels`` (R,); return labels as int64."""
        name = type(self).__name__
        if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[1] != self.num_logits:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(
                f"{name}: logits must have shape (R, {self.num_logits}) (num_logits for K={self.num_classes}), "
                f"got {shape}"
            )
        if not logits.is_floating_point():
            raise ValueError(f"{name}: logits must be floating point, got {logits.dtype}")
        if not isinstance(labels, Tensor) or labels.shape != (logits.shape[0],):
            shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f"{name}: labels must have shape ({logits.shape[0]},) to match logits, got {shape}")
        if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
            raise ValueError(f"{name}: labels must be an integer tensor (int64), got {labels.dtype}")
        if labels.device != logits.device:
            raise ValueError(f"{name}: labels are on {labels.device} but logits on {logits.device}")
        if labels.numel() and bool(((labels < 0) | (labels > self.num_classes)).any()):
            lo, hi = int(labels.min()), int(labels.max())
            raise ValueError(
                f"{name}: labels must be in [0, {self.num_classes}] (0 = background), got values in [{lo}, {hi}]"
            )
        return labels.long()

    # -- the interface ------------------------------------------------------------------------------------
    def forward(self, logits: Tensor, labels: Tensor, *, rois_per_image: Sequence[int] | None = None) -> Tensor:
        """(R, L) logits and (R,) int64 labels in [0, K] -> scalar loss (sum over classes, mean over RoIs).

        ``rois_per_image``: optional RoI count of each image, in row order (summing to R); used by the losses
        with per-group statistics, ignored by the others.
        """
        labels = self._check_inputs(logits, labels)
        rois = check_rois_per_image(rois_per_image, logits.shape[0], owner=type(self).__name__)
        return self._checked_forward(logits, labels, rois)

    def _checked_forward(self, logits: Tensor, labels: Tensor, rois_per_image: list[int] | None) -> Tensor:
        """The loss of validated inputs; 0 with a gradient when R = 0 (never a NaN mean)."""
        if logits.shape[0] == 0:
            return self.empty_loss(logits)
        return self._loss(logits, labels)

    def empty_loss(self, logits: Tensor) -> Tensor:
        """The loss of a batch without RoIs: 0, with a gradient path to the logits and to the activation's learnable
        parameters (DistributedDataParallel expects every parameter in every step's graph)."""
        zero = logits.sum() * 0.0
        learned = getattr(self, "activation_params", None)
        if isinstance(learned, nn.Module):
            zero = zero + sum((p.sum() for p in learned.parameters()), logits.new_zeros(())) * 0.0
        return zero

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The loss for validated, non-empty inputs (each subclass implements it)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _loss")

    def scores(self, logits: Tensor) -> Tensor:
        """(R, L) logits -> (R, K) test-time foreground scores in [0, 1]; column k is label k + 1."""
        if logits.dim() != 2 or logits.shape[1] != self.num_logits:
            raise ValueError(
                f"{type(self).__name__}.scores: logits must have shape (R, {self.num_logits}), got {tuple(logits.shape)}"
            )
        background = self.num_logits == self.num_classes + 1
        if self.calibration is not None:
            return self.calibration.scores(logits, activation=self.activation, background=background)
        return self.activation.test_scores(logits, background=background)

    def init_classifier(self, layer: nn.Module) -> None:
        """Official initialisation of the last classification layer (delegates to the activation)."""
        self.activation.init_classifier(layer)

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}, num_classes={self.num_classes}, num_logits={self.num_logits}"
