"""Hybrid Task Cascade (HTC) R101: declared for the activation x detector table, refused until it exists.

The paper's H-R101 row (Figure 1; the official ``htc_without_semantic`` configs) needs what Cascade Mask R-CNN
lacks: a mask branch per stage interleaved with the box stages, and the mask information flow that feeds each
stage's mask features into the next one. Neither exists in gol, so ``conf/detector/htc_r101_fpn.yaml`` composes
(with the Cascade R101 options, so that a table's overrides apply to the whole row) but cannot be built or
trained. ``check_detector_available`` lets config validation refuse it before any data is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from hydra.utils import get_method
from torchvision.models.detection import MaskRCNN

from gol.models.cascade import STAGE_BOX_WEIGHTS, STAGE_IOU_THRESHOLDS, STAGE_LOSS_WEIGHTS

if TYPE_CHECKING:
    from gol.losses.base import ClassificationLoss

HTC_UNAVAILABLE = (
    "detector=htc_r101_fpn (Hybrid Task Cascade) is not implemented: gol has no interleaved per-stage mask "
    "branches and no mask information flow between stages; use detector=cascade_r101_fpn for the closest available row"
)


class DetectorUnavailableError(ValueError):
    """A detector option that is declared (so that tables name it) but cannot be built."""


def build_htc_r101_fpn(
    *,
    num_classes: int,
    cls_loss: ClassificationLoss,
    train_sizes: Sequence[int],
    test_size: int,
    max_size: int,
    weights: str | None = None,
    weights_backbone: str | None = None,
    allow_download: bool = False,
    trainable_backbone_layers: int | None = None,
    box_score_thresh: float = 1e-4,
    box_nms_thresh: float = 0.5,
    box_detections_per_img: int = 300,
    box_batch_size_per_image: int = 512,
    rpn_pre_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 1000,
    rpn_post_nms_top_n_train: int = 2000,
    rpn_post_nms_top_n_test: int = 1000,
    normed_mask: bool = False,
    classifier_temperature: float | None = None,
    stage_iou_thresholds: Sequence[float] = STAGE_IOU_THRESHOLDS,
    stage_loss_weights: Sequence[float] = STAGE_LOSS_WEIGHTS,
    stage_box_weights: Sequence[Sequence[float]] = STAGE_BOX_WEIGHTS,
) -> MaskRCNN:
    """Refuses (``DetectorUnavailableError``) before building anything; the signature is Cascade R101's.

    Raises:
        DetectorUnavailableError: always, with ``HTC_UNAVAILABLE``.
    """
    raise DetectorUnavailableError(HTC_UNAVAILABLE)


# Builders that are declared but refuse, with the one-line reason.
UNAVAILABLE: dict[Callable[..., MaskRCNN], str] = {build_htc_r101_fpn: HTC_UNAVAILABLE}


def check_detector_available(target: str) -> None:
    """Raise ``DetectorUnavailableError`` if the detector config's ``_target_`` names a refusing builder.

    Cheap (imports the target, builds nothing), so config validation can call it before any data is loaded.
    A target that cannot be imported is left to ``instantiate``, which reports it.
    """
    try:
        builder = get_method(target)
    except (ImportError, ValueError):
        return
    reason = UNAVAILABLE.get(builder)
    if reason is not None:
        raise DetectorUnavailableError(reason)
