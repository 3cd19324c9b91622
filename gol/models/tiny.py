"""A tiny Mask R-CNN that trains from scratch on CPU, for the demo and the tests.

Shape shorthand: B = images, C_i = channels of stage i, F = FPN channels, K = foreground classes.

Designed for ~128 px images of simple shapes with objects of about 10-80 px: a plain conv-BN-ReLU backbone with
strides 4/8/16/32 (four stages, 16-128 channels), a small FPN without the extra max-pool level, one anchor size
per level matched to the object sizes, few RPN proposals and sampled RoIs, a 256-d two-layer box head and a
two-conv mask head. Every width and depth is an argument so the demo can be tuned.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import RPNHead, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork
from torchvision.ops.misc import Conv2dNormActivation

from gol.config.detector import BoxLoss
from gol.models.assemble import DetectorOptions, assemble_maskrcnn
from gol.models.weights import load_detector_weights, read_state_dict, resolve_weights

if TYPE_CHECKING:
    from gol.losses.base import ClassificationLoss

ASPECT_RATIOS = (0.5, 1.0, 2.0)


class TinyBackbone(nn.Module):
    """Stem (stride 2) and stages that each halve the resolution, then an FPN over every stage.

    Input (B, 3, H, W) -> ordered dict ``{"0": (B, F, H/4, W/4), "1": (B, F, H/8, W/8), ...}``.
    """

    def __init__(self, *, stage_channels: Sequence[int], convs_per_stage: int, fpn_channels: int) -> None:
        super().__init__()
        channels = [int(c) for c in stage_channels]
        if not channels or min(channels) <= 0 or convs_per_stage < 1 or fpn_channels <= 0:
            raise ValueError(
                f"tiny backbone needs positive widths and >= 1 conv per stage, got stage_channels={channels}, "
                f"convs_per_stage={convs_per_stage}, fpn_channels={fpn_channels}"
            )
        self.stem = Conv2dNormActivation(3, channels[0], kernel_size=3, stride=2)
        stages = []
        previous = channels[0]
        for width in channels:
            layers = [Conv2dNormActivation(previous, width, kernel_size=3, stride=2)]
            layers += [Conv2dNormActivation(width, width, kernel_size=3) for _ in range(convs_per_stage - 1)]
            stages.append(nn.Sequential(*layers))
            previous = width
        self.stages = nn.ModuleList(stages)
        self.fpn = FeaturePyramidNetwork(channels, fpn_channels)
        self.out_channels = fpn_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        features: OrderedDict[str, Tensor] = OrderedDict()
        x = self.stem(x)  # (B, C_0, H/2, W/2)
        for level, stage in enumerate(self.stages):
            x = stage(x)  # (B, C_level, H / 2**(level + 2), W / 2**(level + 2))
            features[str(level)] = x
        return self.fpn(features)


def build_tiny(
    *,
    num_classes: int,
    cls_loss: ClassificationLoss,
    train_sizes: Sequence[int],
    test_size: int,
    max_size: int,
    weights: str | None = None,
    weights_backbone: str | None = None,
    stage_channels: Sequence[int] = (16, 32, 64, 128),
    convs_per_stage: int = 2,
    fpn_channels: int = 64,
    anchor_sizes: Sequence[int] = (12, 24, 48, 96),
    roi_canonical_scale: int = 56,
    box_head_width: int = 256,
    mask_head_channels: Sequence[int] = (32, 32),
    box_score_thresh: float = 1e-4,
    box_nms_thresh: float = 0.5,
    box_detections_per_img: int = 50,
    box_batch_size_per_image: int = 64,
    rpn_pre_nms_top_n_train: int = 600,
    rpn_pre_nms_top_n_test: int = 300,
    rpn_post_nms_top_n_train: int = 300,
    rpn_post_nms_top_n_test: int = 200,
    normed_mask: bool = False,
    classifier_temperature: float | None = None,
    box_loss: BoxLoss | str = BoxLoss.smooth_l1,
) -> MaskRCNN:
    """The tiny detector, trained from scratch (BatchNorm everywhere in the backbone, nothing frozen).

    Args (besides the common ones of ``gol.models.builders``):
        weights: optional local state_dict of a tiny detector with the same options (no downloads exist).
        weights_backbone: must be None: the tiny backbone has no ImageNet weights (the key exists so that a
            paper cell naming its backbone file composes at ``scale=smoke``, where the detector is this one).
        stage_channels: widths of the stride-4/8/16/32 stages (one FPN level per stage).
        convs_per_stage: 3x3 convolutions per stage (the first one strided).
        fpn_channels: FPN width F (also the RPN and RoI head input width).
        anchor_sizes: one anchor side (pixels, at the resized scale) per FPN level, ratios 0.5/1/2.
        roi_canonical_scale: RoI side that maps to the stride-16 level (torchvision's 224 is for ~800 px images;
            56 sends RoIs under 28 px to stride 4, 28-56 px to 8, 56-112 px to 16 and larger ones to 32).
        box_head_width: width of the two fully connected box-head layers.
        mask_head_channels: widths of the 3x3 mask-head convolutions (RoIAlign 14 -> 28x28 masks); on CPU the
            mask head is the largest cost of a training step, hence the narrow default.
        box_detections_per_img: 50 rather than LVIS's 300: images hold at most 4 objects, and each kept
            detection costs a mask at test time.
        box_batch_size_per_image: 64 sampled RoIs: RoIAlign's backward over them is the largest part of a CPU step.

    ``box_loss`` applies as in the ResNet detectors; their ``roi_align`` and ``backbone_norm`` do not exist here
    (the tiny detector pools with its own canonical scale and has no ResNet).
    """
    if weights_backbone is not None:
        raise ValueError(
            f"detector.weights_backbone={weights_backbone!r}: the tiny detector has no ImageNet backbone and trains "
            "from scratch; set detector.weights_backbone=null (or detector.weights= a tiny detector state_dict)"
        )
    source = resolve_weights(weights, config_key="detector.weights", allow_download=False, enum_type=None)
    options = DetectorOptions.pick(locals())
    backbone = TinyBackbone(
        stage_channels=stage_channels, convs_per_stage=int(convs_per_stage), fpn_channels=int(fpn_channels)
    )
    levels = [str(i) for i in range(len(backbone.stages))]
    if len(anchor_sizes) != len(levels):
        raise ValueError(f"anchor_sizes needs one size per backbone stage ({len(levels)}), got {list(anchor_sizes)}")
    mask_widths = [int(c) for c in mask_head_channels]
    if not mask_widths:
        raise ValueError("mask_head_channels needs at least one conv width")
    anchor_generator = AnchorGenerator(tuple((int(s),) for s in anchor_sizes), (ASPECT_RATIOS,) * len(levels))
    model = assemble_maskrcnn(
        backbone=backbone,
        num_classes=num_classes,
        cls_loss=cls_loss,
        options=options,
        anchor_generator=anchor_generator,
        rpn_head=RPNHead(backbone.out_channels, len(ASPECT_RATIOS)),
        box_roi_pool=_roi_align(levels, 7, canonical_scale=int(roi_canonical_scale)),
        box_head=TwoMLPHead(backbone.out_channels * 7 * 7, int(box_head_width)),
        box_head_width=int(box_head_width),
        mask_roi_pool=_roi_align(levels, 14, canonical_scale=int(roi_canonical_scale)),
        mask_head=MaskRCNNHeads(backbone.out_channels, mask_widths, 1),
        mask_head_width=mask_widths[-1],
        mask_dim_reduced=mask_widths[-1],
    )
    if source is not None:
        load_detector_weights(
            model,
            read_state_dict(source, config_key="detector.weights"),
            architecture="the tiny detector with these options",
            config_key="detector.weights",
            source=str(source),
        )
    return model


def _roi_align(levels: list[str], output_size: int, *, canonical_scale: int) -> MultiScaleRoIAlign:
    # Canonical level 4 is the stride-16 map (torchvision numbers levels by log2 of their stride).
    return MultiScaleRoIAlign(
        levels, output_size=output_size, sampling_ratio=2, canonical_scale=canonical_scale, canonical_level=4
    )
