"""Cascade Mask R-CNN (ResNet-101 FPN): the paper's C-R101 row, built from torchvision's parts.

Shape shorthand: S = cascade stages, K = foreground classes (the builders add background: K + 1 mask slots),
L = ``cls_loss.num_logits``.

torchvision has no Cascade R-CNN. This one follows the official Cascade Mask R-CNN configs (paper-notes 1.5 and
section 4: ``cascade_*`` are ResNet-101) and mmdetection 2.x's ``CascadeRoIHead``: the same backbone, FPN, RPN
and transform as ``build_maskrcnn_r101_fpn``, then three stages (``gol.models.cascade_heads``) with IoU thresholds
0.5 / 0.6 / 0.7, box-coder weights (10, 10, 5, 5) / (20, 20, 10, 10) / (30, 30, 15, 15) (target stds 0.1/0.2,
0.05/0.1, 0.033/0.067), a 2FC-1024 box head each, class-agnostic regression, a Mask R-CNN mask head each (4 convs,
deconv, class-specific logits) and stage loss weights 1 / 0.5 / 0.25 on every stage's box and mask losses.
Every stage's box loss is the official configs' ``SmoothL1Loss(beta=1.0)`` (``configs/_base_/models/
cascade_mask_rcnn_r50_fpn.py`` in mmdetection 2.21) with mmdet's normalisation (``BBoxHead.loss``: the sum over
positives divided by the stage's sampled RoIs), so the Mask R-CNN ``box_loss`` option does not exist here;
``roi_align`` and ``backbone_norm`` are the ResNet-FPN ones (``gol.models.resnet_fpn``).

Every stage has its own classification loss module, so stateful losses (Seesaw counts, the Federated and DropLoss
random streams) keep per-stage state, as mmdet's per-stage ``loss_cls`` does; the modules share the one
``Activation`` object (see ``stage_losses``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import RPNHead, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.ops import MultiScaleRoIAlign

from gol.config.detector import BackboneNorm, BoxLoss, RoIAlignMode
from gol.losses.rng import SeededLoss, mix_seed
from gol.models.assemble import BOX_POSITIVE_FRACTION, DetectorOptions, check_classes, maskrcnn_shell
from gol.models.cascade_heads import CascadeRoIHeads
from gol.models.predictors import GolBoxPredictor, build_mask_predictor
from gol.models.resnet_fpn import (
    FPN_CHANNELS,
    R101,
    fpn_anchor_generator,
    fpn_roi_align,
    load_whole_detector,
    pretrained_fpn_backbone,
)

if TYPE_CHECKING:
    from gol.losses.base import ClassificationLoss


# Cascade R-CNN (Cai & Vasconcelos 2018) and the official configs: three stages of rising IoU.
STAGE_IOU_THRESHOLDS = (0.5, 0.6, 0.7)
STAGE_LOSS_WEIGHTS = (1.0, 0.5, 0.25)
STAGE_BOX_WEIGHTS = ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))
BOX_HEAD_WIDTH = 1024  # Shared2FCBBoxHead, fc_out_channels 1024, in every stage
CASCADE_LABEL = "Cascade Mask R-CNN ResNet-101 FPN"


@dataclass(frozen=True)
class CascadeOptions:
    """Per-stage settings (the config's ``stage_*`` keys), validated once; their common length is S."""

    iou_thresholds: Sequence[float] = STAGE_IOU_THRESHOLDS
    loss_weights: Sequence[float] = STAGE_LOSS_WEIGHTS
    box_weights: Sequence[Sequence[float]] = STAGE_BOX_WEIGHTS

    def __post_init__(self) -> None:
        # Config values arrive as OmegaConf containers or lists; keep plain, hashable tuples.
        object.__setattr__(self, "iou_thresholds", tuple(float(t) for t in self.iou_thresholds))
        object.__setattr__(self, "loss_weights", tuple(float(w) for w in self.loss_weights))
        object.__setattr__(self, "box_weights", tuple(tuple(float(v) for v in w) for w in self.box_weights))
        sizes = (len(self.iou_thresholds), len(self.loss_weights), len(self.box_weights))
        if min(sizes) == 0 or len(set(sizes)) != 1:
            raise ValueError(
                "detector.stage_iou_thresholds, stage_loss_weights and stage_box_weights need one entry per cascade "
                f"stage (at least one); got {sizes[0]}, {sizes[1]} and {sizes[2]}"
            )
        if not all(0.0 < t < 1.0 for t in self.iou_thresholds):
            raise ValueError(f"detector.stage_iou_thresholds must lie in (0, 1), got {list(self.iou_thresholds)}")
        if min(self.loss_weights) < 0 or max(self.loss_weights) == 0:
            raise ValueError(f"detector.stage_loss_weights must be >= 0 and not all 0, got {list(self.loss_weights)}")
        if not all(len(w) == 4 and min(w) > 0 for w in self.box_weights):
            raise ValueError(
                "detector.stage_box_weights needs four positive numbers (wx, wy, ww, wh) per stage, got "
                f"{[list(w) for w in self.box_weights]}"
            )

    @property
    def num_stages(self) -> int:
        return len(self.iou_thresholds)


def stage_losses(cls_loss: ClassificationLoss, num_stages: int) -> list[ClassificationLoss]:
    """One classification loss per stage: ``cls_loss`` itself for stage 0, deep copies for the others.

    The copies carry their own buffers and extra state (built from the same loss config and statistics), but NOT
    their own activation: the deep copy is told that ``cls_loss.activation`` (and its learnable parameters, if any)
    is already copied (``memo``), so all stages, and test-time scoring, use the one shared ``Activation`` object;
    its parameter module sits in every stage's loss, and ``parameters()`` (optimizer, DDP) yields it once. A loss with a random stream
    (Federated, DropLoss) gets a per-stage seed derived from its own, so that stages do not draw the same numbers
    (as mmdet's per-stage losses do not: they all draw from torch's global generator).
    """
    if num_stages < 1:
        raise ValueError(f"a cascade needs at least one stage, got {num_stages}")
    activation = cls_loss.activation
    shared: dict[int, object] = {id(activation): activation}
    if activation.module is not None:  # learnable activation parameters: one set for every stage
        shared[id(activation.module)] = activation.module
    losses = [cls_loss]
    for stage in range(1, num_stages):
        clone = copy.deepcopy(cls_loss, memo=dict(shared))
        if isinstance(clone, SeededLoss):
            state = clone.get_extra_state()
            clone.set_extra_state({"seed": mix_seed(state["seed"], stage), "draws": state["draws"]})
        losses.append(clone)
    return losses


def assemble_cascade(
    *,
    backbone: nn.Module,
    num_classes: int,
    cls_loss: ClassificationLoss,
    options: DetectorOptions,
    cascade: CascadeOptions,
    anchor_generator: AnchorGenerator,
    rpn_head: nn.Module,
    box_roi_pool: MultiScaleRoIAlign,
    box_head_factory: Callable[[], nn.Module],
    box_head_width: int,
    mask_roi_pool: MultiScaleRoIAlign,
    mask_head_factory: Callable[[], nn.Module],
    mask_head_width: int,
    mask_dim_reduced: int,
    heads: Callable[..., CascadeRoIHeads] = CascadeRoIHeads,
) -> MaskRCNN:
    """A torchvision ``MaskRCNN`` whose RoI heads are ``CascadeRoIHeads`` (or what ``heads`` makes of the same
    keyword arguments: ``HTCRoIHeads``) and whose transform is ``GolTransform``.

    Args:
        backbone: feature extractor with an ``out_channels`` attribute (FPN levels as an ordered dict).
        num_classes: K (foreground only).
        cls_loss: stage 0's classification loss; the other stages get copies (``stage_losses``).
        options: shared detector options; ``cascade``: per-stage settings.
        anchor_generator, rpn_head: the RPN's anchors and head.
        box_roi_pool: box RoIAlign shared by the stages; ``box_head_factory`` makes one fresh feature head of
            output width ``box_head_width`` per stage.
        mask_roi_pool: mask RoIAlign shared by the stages; ``mask_head_factory`` makes one fresh mask conv head of
            output width ``mask_head_width`` per stage, each followed by its own predictor (2x deconvolution of width
            ``mask_dim_reduced``, class-specific logits, normalised with ``options.normed_mask``).
    """
    check_classes(num_classes, cls_loss)
    if options.box_loss is not BoxLoss.smooth_l1:
        raise ValueError(
            f"box_loss={options.box_loss.value} is a Mask R-CNN option; the cascade's stages use smooth-L1 (beta 1)"
        )
    losses = stage_losses(cls_loss, cascade.num_stages)
    box_heads = [box_head_factory() for _ in range(cascade.num_stages)]
    box_predictors = [
        GolBoxPredictor(
            box_head_width, cls_loss=loss, classifier_temperature=options.classifier_temperature, class_agnostic=True
        )
        for loss in losses
    ]
    mask_heads = [mask_head_factory() for _ in range(cascade.num_stages)]
    mask_predictors = [
        build_mask_predictor(mask_head_width, mask_dim_reduced, num_classes, normed=options.normed_mask)
        for _ in range(cascade.num_stages)
    ]
    model = maskrcnn_shell(
        backbone=backbone, options=options, anchor_generator=anchor_generator, rpn_head=rpn_head,
        box_roi_pool=box_roi_pool, box_head=box_heads[0], box_predictor=box_predictors[0],
        mask_roi_pool=mask_roi_pool, mask_head=mask_heads[0], mask_predictor=mask_predictors[0],
    )  # fmt: skip
    # MaskRCNN builds single-stage RoIHeads around stage 0's modules; the cascade replaces them.
    model.roi_heads = heads(
        box_roi_pool=box_roi_pool,
        box_heads=box_heads,
        box_predictors=box_predictors,
        cls_losses=losses,
        iou_thresholds=cascade.iou_thresholds,
        box_coder_weights=cascade.box_weights,
        loss_weights=cascade.loss_weights,
        batch_size_per_image=options.box_batch_size_per_image,
        positive_fraction=BOX_POSITIVE_FRACTION,
        score_thresh=options.box_score_thresh,
        nms_thresh=options.box_nms_thresh,
        detections_per_img=options.box_detections_per_img,
        mask_roi_pool=mask_roi_pool,
        mask_heads=mask_heads,
        mask_predictors=mask_predictors,
    )
    return model


def build_cascade_r101_fpn(
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
    roi_align: RoIAlignMode | str = RoIAlignMode.mmdet,
    backbone_norm: BackboneNorm | str = BackboneNorm.frozen_stats,
) -> MaskRCNN:
    """Cascade Mask R-CNN ResNet-101 FPN (the paper's C-R101).

    Arguments as ``build_maskrcnn_r101_fpn`` (see ``gol.models.builders``), plus:
        weights: a whole Cascade Mask R-CNN state_dict file saved by gol (torchvision publishes none); the
            class-dependent layers (every stage's ``cls_score`` and mask logits) are re-initialised when K differs.
        weights_backbone: an ImageNet ResNet-101 classifier state_dict file.
        classifier_temperature: NormedLinear classifiers (every stage) with this temperature, or null.
        stage_iou_thresholds: foreground IoU of each stage (0.5, 0.6, 0.7); their number is S.
        stage_loss_weights: weight of each stage's classification, box and mask losses (1, 0.5, 0.25).
        stage_box_weights: per-stage box-coder weights (wx, wy, ww, wh).
        roi_align, backbone_norm: as the ResNet-FPN Mask R-CNN builders (mmdet's: ``mmdet``, ``frozen_stats``).
    """
    return r101_cascade(dict(locals()), heads=CascadeRoIHeads, label=CASCADE_LABEL)


def r101_cascade(arguments: dict[str, Any], *, heads: Callable[..., CascadeRoIHeads], label: str) -> MaskRCNN:
    """The ResNet-101 FPN cascade of ``build_cascade_r101_fpn``'s ``arguments`` (all of them, by name), with RoI
    heads made by ``heads`` (``CascadeRoIHeads``' keyword arguments) and ``label`` naming it in messages."""
    options = DetectorOptions.pick(arguments, box_loss=BoxLoss.smooth_l1)  # each stage: SmoothL1Loss(beta=1.0)
    cascade = CascadeOptions(
        iou_thresholds=arguments["stage_iou_thresholds"],
        loss_weights=arguments["stage_loss_weights"],
        box_weights=arguments["stage_box_weights"],
    )
    num_classes, cls_loss = arguments["num_classes"], arguments["cls_loss"]
    check_classes(num_classes, cls_loss)
    pooling = RoIAlignMode(arguments["roi_align"])
    # As build_maskrcnn_r101_fpn: backbone_norm's layers and frozen early stages with pretrained weights.
    backbone, detector_source = pretrained_fpn_backbone(
        R101, label=label, detector_enum=None, weights=arguments["weights"],
        weights_backbone=arguments["weights_backbone"], allow_download=arguments["allow_download"],
        trainable_backbone_layers=arguments["trainable_backbone_layers"], backbone_norm=arguments["backbone_norm"],
    )  # fmt: skip
    model = assemble_cascade(
        backbone=backbone,
        num_classes=num_classes,
        cls_loss=cls_loss,
        options=options,
        cascade=cascade,
        heads=heads,
        anchor_generator=fpn_anchor_generator(),
        rpn_head=RPNHead(FPN_CHANNELS, 3),
        box_roi_pool=fpn_roi_align(7, pooling),
        box_head_factory=lambda: TwoMLPHead(FPN_CHANNELS * 7 * 7, BOX_HEAD_WIDTH),
        box_head_width=BOX_HEAD_WIDTH,
        mask_roi_pool=fpn_roi_align(14, pooling),
        mask_head_factory=lambda: MaskRCNNHeads(FPN_CHANNELS, [256, 256, 256, 256], 1),
        mask_head_width=256,
        mask_dim_reduced=256,
    )
    if detector_source is not None:
        load_whole_detector(model, detector_source, architecture=label)
    return model
