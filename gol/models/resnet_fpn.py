"""Mask R-CNN with ResNet / ResNeXt FPN backbones: the paper's R50, R101 and X101 (64x4d), plus torchvision's v2.

Shape shorthand: K = foreground classes (the builders add background: K + 1 box and mask slots).

Each builder mirrors its torchvision counterpart (``maskrcnn_resnet50_fpn`` / ``_v2``, ``resnet_fpn_backbone``):
with pretrained weights (detector or backbone) only the last ``trainable_backbone_layers`` stages train (default
3, the official configs' ``frozen_stages=1``); without weights every layer trains. The normalisation layers are
``backbone_norm``'s: ``frozen_stats`` (the default, mmdetection's) everywhere, or with ``torchvision``
``FrozenBatchNorm2d`` for the pretrained v1 backbones and ordinary BatchNorm otherwise. Weights are local files unless
``allow_download`` (see ``gol.models.weights``).

Two options bring the backbone and the RoI pooling to mmdetection 2.21's (the official configs'):
``backbone_norm="frozen_stats"`` (``gol.models.norm``: frozen statistics, trainable affine, in every layer of the
ResNet whatever the weights) and ``roi_align="mmdet"`` (``gol.models.roi_align``, box and mask pooling).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn
from torchvision.models import (
    ResNet,
    ResNet50_Weights,
    ResNet101_Weights,
    ResNeXt101_64X4D_Weights,
    WeightsEnum,
    resnet50,
    resnet101,
    resnext101_64x4d,
)
from torchvision.models.detection import (
    MaskRCNN,
    MaskRCNN_ResNet50_FPN_V2_Weights,
    MaskRCNN_ResNet50_FPN_Weights,
)
from torchvision.models.detection._utils import overwrite_eps
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, RPNHead, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from gol.config.detector import BackboneNorm, RoIAlignMode
from gol.models.assemble import DetectorOptions, assemble_maskrcnn
from gol.models.norm import FrozenStatsBatchNorm2d
from gol.models.roi_align import AlignedMultiScaleRoIAlign
from gol.models.weights import (
    WeightsSource,
    load_backbone_weights,
    load_detector_weights,
    read_state_dict,
    resolve_weights,
)

if TYPE_CHECKING:
    from gol.losses.base import ClassificationLoss

log = logging.getLogger(__name__)

FPN_CHANNELS = 256
FPN_LEVELS = ["0", "1", "2", "3"]
FPN_STRIDES = (4, 8, 16, 32)  # of layer1..layer4, mmdet's featmap_strides
# torchvision's default trainable stages with pretrained weights (conv1 and layer1 frozen).
DEFAULT_TRAINABLE_LAYERS = 3
ALL_LAYERS = 5
# torchvision's COCO_V1 Mask R-CNN file was trained with FrozenBatchNorm eps 0; its builder restores that.
COCO_V1_FILE = Path(MaskRCNN_ResNet50_FPN_Weights.COCO_V1.url).name


@dataclass(frozen=True)
class ResNetSpec:
    """What distinguishes one ResNet Mask R-CNN from another."""

    label: str
    resnet: Callable[..., ResNet]
    backbone_enum: type[WeightsEnum]
    detector_enum: type[WeightsEnum] | None
    v2: bool  # torchvision's v2 recipe: BN everywhere, 2-conv RPN head, 4conv1fc box head, BN mask head


R50 = ResNetSpec("Mask R-CNN ResNet-50 FPN", resnet50, ResNet50_Weights, MaskRCNN_ResNet50_FPN_Weights, False)
R50_V2 = ResNetSpec("Mask R-CNN ResNet-50 FPN v2", resnet50, ResNet50_Weights, MaskRCNN_ResNet50_FPN_V2_Weights, True)
R101 = ResNetSpec("Mask R-CNN ResNet-101 FPN", resnet101, ResNet101_Weights, None, False)
X101 = ResNetSpec("Mask R-CNN ResNeXt-101 64x4d FPN", resnext101_64x4d, ResNeXt101_64X4D_Weights, None, False)


def build_resnet_maskrcnn(
    spec: ResNetSpec,
    *,
    num_classes: int,
    cls_loss: ClassificationLoss,
    options: DetectorOptions,
    weights: str | None,
    weights_backbone: str | None,
    allow_download: bool,
    trainable_backbone_layers: int | None,
    roi_align: RoIAlignMode | str,
    backbone_norm: BackboneNorm | str,
) -> MaskRCNN:
    """Build the detector described by ``spec`` (the public builders below fill in ``spec``)."""
    pooling = RoIAlignMode(roi_align)
    backbone, detector_source = pretrained_fpn_backbone(
        spec, label=spec.label, detector_enum=spec.detector_enum, weights=weights,
        weights_backbone=weights_backbone, allow_download=allow_download,
        trainable_backbone_layers=trainable_backbone_layers, backbone_norm=backbone_norm,
    )  # fmt: skip
    if spec.v2:
        rpn_head: nn.Module = RPNHead(FPN_CHANNELS, 3, conv_depth=2)
        box_head: nn.Module = FastRCNNConvFCHead(
            (FPN_CHANNELS, 7, 7), [256, 256, 256, 256], [1024], norm_layer=nn.BatchNorm2d
        )
        mask_head = MaskRCNNHeads(FPN_CHANNELS, [256, 256, 256, 256], 1, norm_layer=nn.BatchNorm2d)
    else:
        rpn_head = RPNHead(FPN_CHANNELS, 3)
        box_head = TwoMLPHead(FPN_CHANNELS * 7 * 7, 1024)
        mask_head = MaskRCNNHeads(FPN_CHANNELS, [256, 256, 256, 256], 1)
    model = assemble_maskrcnn(
        backbone=backbone,
        num_classes=num_classes,
        cls_loss=cls_loss,
        options=options,
        anchor_generator=fpn_anchor_generator(),
        rpn_head=rpn_head,
        box_roi_pool=fpn_roi_align(7, pooling),
        box_head=box_head,
        box_head_width=1024,
        mask_roi_pool=fpn_roi_align(14, pooling),
        mask_head=mask_head,
        mask_head_width=256,
        mask_dim_reduced=256,
    )
    if detector_source is not None:
        load_whole_detector(model, detector_source, architecture=spec.label)
        name = detector_source.name if isinstance(detector_source, Path) else None
        if detector_source == MaskRCNN_ResNet50_FPN_Weights.COCO_V1 or (spec is R50 and name == COCO_V1_FILE):
            overwrite_eps(model, 0.0)
    return model


def pretrained_fpn_backbone(
    spec: ResNetSpec,
    *,
    label: str,
    detector_enum: type[WeightsEnum] | None,
    weights: str | None,
    weights_backbone: str | None,
    allow_download: bool,
    trainable_backbone_layers: int | None,
    backbone_norm: BackboneNorm | str,
) -> tuple[BackboneWithFPN, WeightsSource | None]:
    """The FPN backbone of ``spec`` (ImageNet weights loaded when ``weights_backbone`` names them; frozen early
    stages with pretrained weights, as torchvision does) and the resolved whole-detector weights
    (``weights``), which the caller loads with :func:`load_whole_detector` once the detector is assembled.

    ``label`` names the detector in messages; ``detector_enum`` is torchvision's weights enum for it, if any.
    ``backbone_norm="frozen_stats"`` puts ``FrozenStatsBatchNorm2d`` in every normalisation layer of the ResNet
    (v2 too) when there are pretrained statistics to freeze (``weights`` or ``weights_backbone``); the stages that
    do not train have their affine parameters frozen as well. From scratch it is ordinary BatchNorm: statistics
    frozen at their initial values (mean 0, variance 1) leave a ResNet-101 unnormalised, and its first losses are
    ~1e4, then NaN.
    """
    norm = BackboneNorm(backbone_norm)
    detector_source = resolve_weights(
        weights, config_key="detector.weights", allow_download=allow_download, enum_type=detector_enum
    )
    backbone_source = resolve_weights(
        weights_backbone,
        config_key="detector.weights_backbone",
        allow_download=allow_download,
        enum_type=spec.backbone_enum,
    )
    if detector_source is not None and backbone_source is not None:
        raise ValueError(
            "set detector.weights or detector.weights_backbone, not both (detector weights include the backbone)"
        )
    pretrained = detector_source is not None or backbone_source is not None
    trainable = _trainable_layers(trainable_backbone_layers, pretrained=pretrained)
    if not pretrained:
        log.warning(
            "%s: no pretrained weights configured, training every layer from scratch%s", label,
            " (BatchNorm learns its statistics: frozen_stats freezes pretrained ones, and frozen initial statistics "
            "let a deep ResNet's activations grow unnormalised until the loss diverges)"
            if norm is BackboneNorm.frozen_stats else "",
        )  # fmt: skip

    norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d
    if norm is BackboneNorm.frozen_stats and pretrained:
        norm_layer = FrozenStatsBatchNorm2d
    elif pretrained and not spec.v2:
        norm_layer = FrozenBatchNorm2d
    body = spec.resnet(weights=None, norm_layer=norm_layer)
    if backbone_source is not None:
        load_backbone_weights(
            body,
            read_state_dict(backbone_source, config_key="detector.weights_backbone"),
            architecture=f"the {label} backbone",
            config_key="detector.weights_backbone",
            source=str(backbone_source),
        )
    return _fpn_backbone(body, trainable, v2=spec.v2), detector_source


def load_whole_detector(model: nn.Module, source: WeightsSource, *, architecture: str) -> None:
    """Load ``detector.weights`` into the assembled ``model`` (class-dependent layers re-initialised if K differs)."""
    load_detector_weights(
        model,
        read_state_dict(source, config_key="detector.weights"),
        architecture=architecture,
        config_key="detector.weights",
        source=str(source),
    )


def fpn_anchor_generator() -> AnchorGenerator:
    """torchvision's Mask R-CNN anchors: one size per FPN level (32-512 px), aspect ratios 0.5, 1, 2."""
    return AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)


def fpn_roi_align(output_size: int, mode: RoIAlignMode = RoIAlignMode.torchvision) -> MultiScaleRoIAlign:
    """RoIAlign over the four FPN levels (7 for the box head, 14 for the mask head): torchvision's
    (``aligned=False``, 2 samples per bin axis) or mmdet's (``gol.models.roi_align``)."""
    if mode is RoIAlignMode.mmdet:
        return AlignedMultiScaleRoIAlign(FPN_LEVELS, output_size, strides=FPN_STRIDES)
    return MultiScaleRoIAlign(FPN_LEVELS, output_size=output_size, sampling_ratio=2)


def _trainable_layers(requested: int | None, *, pretrained: bool) -> int:
    if not pretrained:
        if requested is not None and requested != ALL_LAYERS:
            raise ValueError(
                f"detector.trainable_backbone_layers={requested} needs pretrained weights (detector.weights or "
                "detector.weights_backbone); without them every layer trains, so leave it null"
            )
        return ALL_LAYERS
    trainable = DEFAULT_TRAINABLE_LAYERS if requested is None else requested
    if not 0 <= trainable <= ALL_LAYERS:
        raise ValueError(f"detector.trainable_backbone_layers must be in [0, 5], got {trainable}")
    return trainable


def _fpn_backbone(body: ResNet, trainable: int, *, v2: bool) -> BackboneWithFPN:
    """torchvision's ``_resnet_fpn_extractor``: freeze the first stages, FPN over layer1..layer4 + max-pool level."""
    train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable]
    if trainable == ALL_LAYERS:
        train.append("bn1")
    for name, parameter in body.named_parameters():
        if not any(name.startswith(prefix) for prefix in train):
            parameter.requires_grad_(False)
    stage2 = body.inplanes // 8  # 256 for every bottleneck ResNet
    return BackboneWithFPN(
        body,
        return_layers={f"layer{k}": str(k - 1) for k in range(1, 5)},
        in_channels_list=[stage2 * 2**i for i in range(4)],
        out_channels=FPN_CHANNELS,
        extra_blocks=LastLevelMaxPool(),
        norm_layer=nn.BatchNorm2d if v2 else None,
    )
