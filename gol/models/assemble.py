"""Put a backbone, heads, ``GolRoIHeads`` and ``GolTransform`` together into a torchvision ``MaskRCNN``.

Shape shorthand: K = foreground classes (labels 1..K, 0 = background); every builder takes K and adds the
background itself, so the box regression and mask logits have K + 1 slots and the classifier has
``cls_loss.num_logits`` outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

from gol.config.detector import BoxLoss
from gol.models.predictors import GolBoxPredictor, build_mask_predictor
from gol.models.roi_heads import GolRoIHeads
from gol.models.rpn import GolRPN
from gol.models.transform import GolTransform

if TYPE_CHECKING:
    from gol.losses.base import ClassificationLoss

# torchvision / Mask R-CNN RoI sampling: IoU >= 0.5 is foreground, below is background, 25% positives.
BOX_FG_IOU_THRESH = 0.5
BOX_BG_IOU_THRESH = 0.5
BOX_POSITIVE_FRACTION = 0.25


@dataclass(frozen=True)
class DetectorOptions:
    """Options every builder shares (the config's detector keys), validated once.

    Defaults are the LVIS test settings (paper-notes section 2: score threshold 1e-4, 300 detections per image,
    NMS 0.5 for the official baselines and 0.3 for GOL), mmdetection's Mask R-CNN RPN counts (2000 / 1000 before
    NMS, 1000 / 1000 after) and its L1 box loss. ``box_loss`` is the
    single-stage box head's regression loss (``gol.config.detector.BoxLoss``); the cascade has its own.
    """

    train_sizes: Sequence[int]
    test_size: int
    max_size: int
    box_score_thresh: float = 1e-4
    box_nms_thresh: float = 0.5
    box_detections_per_img: int = 300
    box_batch_size_per_image: int = 512
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    normed_mask: bool = False
    classifier_temperature: float | None = None
    box_loss: BoxLoss = BoxLoss.l1

    @classmethod
    def pick(cls, arguments: Mapping[str, Any], **overrides: Any) -> DetectorOptions:
        """The options among a builder's ``arguments`` (its ``locals()``: every keyword it was called with), by name."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in arguments.items() if k in names}, **overrides)

    def __post_init__(self) -> None:
        # Config values arrive as OmegaConf containers; keep plain, hashable Python values.
        object.__setattr__(self, "train_sizes", tuple(int(s) for s in self.train_sizes))
        object.__setattr__(self, "box_loss", BoxLoss(self.box_loss))
        if not 0.0 <= self.box_score_thresh < 1.0:
            raise ValueError(f"box_score_thresh must be in [0, 1), got {self.box_score_thresh}")
        if not 0.0 < self.box_nms_thresh <= 1.0:
            raise ValueError(f"box_nms_thresh must be in (0, 1], got {self.box_nms_thresh}")
        if self.classifier_temperature is not None and self.classifier_temperature <= 0:
            raise ValueError(
                f"classifier_temperature must be positive or null (plain linear), got {self.classifier_temperature}"
            )
        for name in (
            "box_detections_per_img",
            "box_batch_size_per_image",
            "rpn_pre_nms_top_n_train",
            "rpn_pre_nms_top_n_test",
            "rpn_post_nms_top_n_train",
            "rpn_post_nms_top_n_test",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")


def check_classes(num_classes: int, cls_loss: ClassificationLoss) -> None:
    """Fail early (one line) when the loss was built for another K than the detector."""
    if num_classes <= 0:
        raise ValueError(f"num_classes is K, the number of foreground categories; got {num_classes}")
    if not isinstance(cls_loss, nn.Module) or not hasattr(cls_loss, "num_logits"):
        raise TypeError(f"cls_loss must be a gol.losses ClassificationLoss module, got {type(cls_loss).__name__}")
    if cls_loss.num_classes != num_classes:
        raise ValueError(f"cls_loss was built for {cls_loss.num_classes} classes but the detector for {num_classes}")


def assemble_maskrcnn(
    *,
    backbone: nn.Module,
    num_classes: int,
    cls_loss: ClassificationLoss,
    options: DetectorOptions,
    anchor_generator: AnchorGenerator,
    rpn_head: nn.Module,
    box_roi_pool: MultiScaleRoIAlign,
    box_head: nn.Module,
    box_head_width: int,
    mask_roi_pool: MultiScaleRoIAlign,
    mask_head: nn.Module,
    mask_head_width: int,
    mask_dim_reduced: int,
) -> MaskRCNN:
    """A torchvision ``MaskRCNN`` whose RoI heads are ``GolRoIHeads`` and whose transform is ``GolTransform``.

    Args:
        backbone: feature extractor with an ``out_channels`` attribute (FPN levels as an ordered dict).
        num_classes: K (foreground only).
        cls_loss: the classification loss; sets the classifier width, its init and the test-time scores.
        options: shared detector options.
        anchor_generator, rpn_head: the RPN's anchors and head.
        box_roi_pool, box_head, box_head_width: box RoIAlign, feature head and its output width D.
        mask_roi_pool, mask_head, mask_head_width, mask_dim_reduced: mask RoIAlign, conv head, its output
            channels and the width of the 2x deconvolution before the mask logits.
    """
    check_classes(num_classes, cls_loss)
    box_predictor = GolBoxPredictor(
        box_head_width, cls_loss=cls_loss, classifier_temperature=options.classifier_temperature
    )
    mask_predictor = build_mask_predictor(mask_head_width, mask_dim_reduced, num_classes, normed=options.normed_mask)
    model = maskrcnn_shell(
        backbone=backbone, options=options, anchor_generator=anchor_generator, rpn_head=rpn_head,
        box_roi_pool=box_roi_pool, box_head=box_head, box_predictor=box_predictor, mask_roi_pool=mask_roi_pool,
        mask_head=mask_head, mask_predictor=mask_predictor,
    )  # fmt: skip
    model.roi_heads = GolRoIHeads(
        cls_loss=cls_loss,
        box_roi_pool=box_roi_pool,
        box_head=box_head,
        box_predictor=box_predictor,
        fg_iou_thresh=BOX_FG_IOU_THRESH,
        bg_iou_thresh=BOX_BG_IOU_THRESH,
        batch_size_per_image=options.box_batch_size_per_image,
        positive_fraction=BOX_POSITIVE_FRACTION,
        bbox_reg_weights=None,  # torchvision's (10, 10, 5, 5), the inverse of mmdet's target stds
        box_loss=options.box_loss,
        score_thresh=options.box_score_thresh,
        nms_thresh=options.box_nms_thresh,
        detections_per_img=options.box_detections_per_img,
        mask_roi_pool=mask_roi_pool,
        mask_head=mask_head,
        mask_predictor=mask_predictor,
    )
    return model


def maskrcnn_shell(
    *,
    backbone: nn.Module,
    options: DetectorOptions,
    anchor_generator: AnchorGenerator,
    rpn_head: nn.Module,
    box_roi_pool: MultiScaleRoIAlign,
    box_head: nn.Module,
    box_predictor: nn.Module,
    mask_roi_pool: MultiScaleRoIAlign,
    mask_head: nn.Module,
    mask_predictor: nn.Module,
) -> MaskRCNN:
    """torchvision's ``MaskRCNN`` around these parts, with ``GolRPN`` (the options' RPN settings and box loss) and
    ``GolTransform``.

    Its ``roi_heads`` are torchvision's single-stage ones; the caller replaces them (``GolRoIHeads``, or the
    cascade's heads).
    """
    model = MaskRCNN(
        backbone,
        num_classes=None,
        min_size=options.test_size,
        max_size=options.max_size,
        rpn_anchor_generator=anchor_generator,
        rpn_head=rpn_head,
        rpn_pre_nms_top_n_train=options.rpn_pre_nms_top_n_train,
        rpn_pre_nms_top_n_test=options.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_train=options.rpn_post_nms_top_n_train,
        rpn_post_nms_top_n_test=options.rpn_post_nms_top_n_test,
        box_roi_pool=box_roi_pool,
        box_head=box_head,
        box_predictor=box_predictor,
        mask_roi_pool=mask_roi_pool,
        mask_head=mask_head,
        mask_predictor=mask_predictor,
    )
    model.transform = GolTransform(
        train_sizes=options.train_sizes, test_size=options.test_size, max_size=options.max_size
    )
    model.rpn = GolRPN(
        anchor_generator,
        rpn_head,
        pre_nms_top_n={"training": options.rpn_pre_nms_top_n_train, "testing": options.rpn_pre_nms_top_n_test},
        post_nms_top_n={"training": options.rpn_post_nms_top_n_train, "testing": options.rpn_post_nms_top_n_test},
        box_loss=options.box_loss,  # the RPN's box loss follows the box head's (mmdetection: both L1, or smooth-L1)
    )
    return model
