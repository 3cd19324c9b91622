"""Keyword-only builders of the paper's Mask R-CNN detectors (what ``conf/detector/*.yaml`` instantiate).

The engine calls ``factory(num_classes=K, cls_loss=loss, train_sizes=..., test_size=..., max_size=...)`` on the
partial a detector config gives; every other argument comes from the config. Common arguments:

    num_classes: K, foreground categories only (the builder adds background).
    cls_loss: the ``gol.losses`` classification loss (classifier width, init and test-time scores).
    train_sizes, test_size, max_size: shorter-side resize inside the model (multi-scale while training).
    weights: a whole-detector state_dict file (e.g. COCO Mask R-CNN); class-dependent layers are re-initialised.
    weights_backbone: an ImageNet classifier state_dict file for the backbone.
    allow_download: let ``weights``/``weights_backbone`` name torchvision weights (fetched on first use).
    trainable_backbone_layers: backbone stages trained with pretrained weights (torchvision's default 3).
    box_score_thresh, box_nms_thresh, box_detections_per_img: test-time filtering (LVIS: 1e-4, 0.5/0.3, 300).
    box_batch_size_per_image: sampled RoIs per image (512).
    rpn_{pre,post}_nms_top_n_{train,test}: RPN proposals (2000/1000 before NMS; 1000/1000 after, as mmdetection's Mask R-CNN; torchvision 2000/1000).
    normed_mask: GOL's NormedConv2d mask logits (temperature 20).
    classifier_temperature: NormedLinear classifier with this temperature (5 in the official EQL runs), or null.
    box_loss: box-regression term, ``smooth_l1`` (torchvision) or ``l1`` (mmdet, the official GOL configs).
    roi_align: FPN RoI pooling, ``torchvision`` or ``mmdet`` (aligned, adaptive sampling; ``gol.models.roi_align``).
    backbone_norm: ResNet normalisation, ``torchvision`` (FrozenBatchNorm2d with pretrained weights) or
        ``frozen_stats`` (mmdet's BN with ``norm_eval=True``: frozen statistics, trainable affine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from torchvision.models.detection import MaskRCNN

from gol.config.detector import BackboneNorm, BoxLoss, RoIAlignMode
from gol.models.assemble import DetectorOptions
from gol.models.resnet_fpn import R50, R50_V2, R101, X101, ResNetSpec, build_resnet_maskrcnn

if TYPE_CHECKING:
    from gol.losses.base import ClassificationLoss


def _resnet_variant(spec: ResNetSpec, name: str, doc: str) -> Callable[..., MaskRCNN]:
    """One builder per backbone variant, sharing a single keyword-only signature."""

    def build(
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
        rpn_post_nms_top_n_train: int = 1000,
        rpn_post_nms_top_n_test: int = 1000,
        normed_mask: bool = False,
        classifier_temperature: float | None = None,
        box_loss: BoxLoss | str = BoxLoss.l1,
        roi_align: RoIAlignMode | str = RoIAlignMode.mmdet,
        backbone_norm: BackboneNorm | str = BackboneNorm.frozen_stats,
    ) -> MaskRCNN:
        options = DetectorOptions.pick(locals())
        return build_resnet_maskrcnn(
            spec, num_classes=num_classes, cls_loss=cls_loss, options=options, weights=weights,
            weights_backbone=weights_backbone, allow_download=allow_download,
            trainable_backbone_layers=trainable_backbone_layers, roi_align=roi_align, backbone_norm=backbone_norm,
        )  # fmt: skip

    build.__name__ = build.__qualname__ = name
    build.__doc__ = doc
    return build


build_maskrcnn_r50_fpn = _resnet_variant(
    R50, "build_maskrcnn_r50_fpn", "Mask R-CNN ResNet-50 FPN (the paper's R50; torchvision ``maskrcnn_resnet50_fpn``)."
)
build_maskrcnn_r50_fpn_v2 = _resnet_variant(
    R50_V2,
    "build_maskrcnn_r50_fpn_v2",
    "Mask R-CNN ResNet-50 FPN v2 (torchvision ``maskrcnn_resnet50_fpn_v2``: BN heads, 4conv1fc box head).",
)
build_maskrcnn_r101_fpn = _resnet_variant(
    R101,
    "build_maskrcnn_r101_fpn",
    "Mask R-CNN ResNet-101 FPN (the paper's R101; torchvision has no detector weights for it).",
)
build_maskrcnn_x101_fpn = _resnet_variant(
    X101,
    "build_maskrcnn_x101_fpn",
    "Mask R-CNN ResNeXt-101 64x4d FPN (the paper's X101, mmdet ``open-mmlab://resnext101_64x4d``).",
)
