"""Schemas of the ``detector`` config group (``conf/detector/*.yaml``).

Every option is a partial of a ``gol.models`` builder: the engine adds ``num_classes`` (K), ``cls_loss`` and the
data source's ``train_sizes``, ``test_size`` and ``max_size``. Weights are local files: every ResNet option starts
from its ImageNet file under ``paths.weights_root`` (torchvision's file names; a missing file is refused before
anything is built or queued, and ``weights_backbone: null`` trains from scratch); ``allow_download: true`` lets
them name torchvision weights instead.

The ResNet detectors are mmdetection 2.21's, which the official GOL configs train with
(``configs/_base_/models/mask_rcnn_r50_fpn.py`` there), built from torchvision's parts: ``box_loss: l1``,
``roi_align: mmdet`` and ``backbone_norm: frozen_stats`` by default; ``smooth_l1``, ``torchvision`` and
``torchvision`` give torchvision's own recipe. The tiny detector keeps torchvision's box loss.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

GROUP = "detector"


class _Choice(str, enum.Enum):
    """A string option; lower-case member names, since OmegaConf validates Enum fields by member name."""

    @classmethod
    def _missing_(cls, value: object) -> _Choice:
        options = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"detector.{cls._key()} must be one of {options}, got {value!r}")

    @classmethod
    def _key(cls) -> str:
        raise NotImplementedError


class BoxLoss(_Choice):
    """The box-regression term of Mask R-CNN's box head (class-specific deltas of the positive sampled RoIs,
    summed over RoIs and coordinates, divided by the number R of sampled RoIs of the batch).

    smooth_l1: torchvision's ``fastrcnn_loss``, smooth-L1 with beta 1/9.
    l1: mmdet's ``L1Loss(loss_weight=1.0)`` of the official configs; mmdet 2.21 ``BBoxHead.loss``
        (``mmdet/models/roi_heads/bbox_heads/bbox_head.py``) passes ``avg_factor=bbox_targets.size(0)``, i.e. R.
    """

    smooth_l1 = "smooth_l1"
    l1 = "l1"

    @classmethod
    def _key(cls) -> str:
        return "box_loss"


class RoIAlignMode(_Choice):
    """How box and mask features are pooled from the FPN levels.

    torchvision: ``MultiScaleRoIAlign``, ``aligned=False``, ``sampling_ratio=2``.
    mmdet: mmdet's ``SingleRoIExtractor`` with mmcv's ``RoIAlign(aligned=True, sampling_ratio=0)`` (adaptive
        sampling), see ``gol.models.roi_align``.
    """

    torchvision = "torchvision"
    mmdet = "mmdet"

    @classmethod
    def _key(cls) -> str:
        return "roi_align"


class BackboneNorm(_Choice):
    """The normalisation layers of the ResNet backbone.

    torchvision: ``FrozenBatchNorm2d`` (statistics and affine frozen) with pretrained weights, ordinary
        BatchNorm without them (and in the v2 recipe).
    frozen_stats: mmdet's ``norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True``: running statistics
        frozen, affine weight and bias trained in the trainable stages (``gol.models.norm``); from scratch
        (no weights) there are no statistics to freeze and BatchNorm learns them, as ``torchvision``.
    """

    torchvision = "torchvision"
    frozen_stats = "frozen_stats"

    @classmethod
    def _key(cls) -> str:
        return "backbone_norm"


@dataclass
class _DetectorCommonConf:
    """Options shared by every detector. LVIS test settings (paper-notes section 2) by default."""

    _partial_: bool = True
    weights: str | None = None  # whole-detector state_dict file (e.g. COCO Mask R-CNN)
    box_score_thresh: float = 1e-4  # LVIS: keep low-scoring detections
    box_nms_thresh: float = 0.5  # official baselines 0.5; GOL (gumbel) configs 0.3
    box_detections_per_img: int = 300  # the LVIS limit
    normed_mask: bool = False  # GOL: NormedConv2d mask logits, temperature 20
    classifier_temperature: float | None = None  # NormedLinear classifier (official EQL-normed runs: 5)


@dataclass
class _MaskRCNNConf(_DetectorCommonConf):
    """Options of the single-stage (Mask R-CNN) box head."""

    box_loss: BoxLoss = BoxLoss.smooth_l1  # torchvision's; the ResNet detectors default to mmdet's l1


@dataclass
class _ResNetFPNConf(_DetectorCommonConf):
    weights_backbone: str | None = None  # ImageNet classifier state_dict file (each option names its own)
    allow_download: bool = False  # let weights/weights_backbone name torchvision weights
    trainable_backbone_layers: int | None = None  # torchvision: 3 with pretrained weights, all without
    box_batch_size_per_image: int = 512
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 1000  # mmdet Mask R-CNN configs: rpn_proposal max_per_img=1000
    rpn_post_nms_top_n_test: int = 1000
    roi_align: RoIAlignMode = RoIAlignMode.mmdet  # the official configs' (torchvision: aligned=False, 2 samples)
    backbone_norm: BackboneNorm = BackboneNorm.frozen_stats  # the official configs' (torchvision: all frozen)


# torchvision's ImageNet files (the official configs' torchvision://resnet50 and torchvision://resnet101).
R50_IMAGENET = "${paths.weights_root}/resnet50-0676ba61.pth"  # ResNet50_Weights.IMAGENET1K_V1
R101_IMAGENET = "${paths.weights_root}/resnet101-63fe2227.pth"  # ResNet101_Weights.IMAGENET1K_V1
# torchvision's ResNeXt-101 64x4d (IMAGENET1K_V1, its newer training recipe). The official X101 configs start from
# open-mmlab://resnext101_64x4d (resnext101_64x4d-ee2c6f71.pth, same layer names): the paper's X101 cells name it.
X101_IMAGENET = "${paths.weights_root}/resnext101_64x4d-173b62eb.pth"
R50_V2_IMAGENET = "${paths.weights_root}/resnet50-11ad3fa6.pth"  # ResNet50_Weights.IMAGENET1K_V2 (torchvision's v2)


@dataclass
class _MaskRCNNResNetFPNConf(_ResNetFPNConf, _MaskRCNNConf):
    """A ResNet-FPN Mask R-CNN: the ResNet-FPN options and the single-stage box head's."""

    box_loss: BoxLoss = BoxLoss.l1  # the official configs' L1Loss (torchvision: smooth_l1)


@dataclass
class MaskRCNNR50FPNConf(_MaskRCNNResNetFPNConf):
    _target_: str = "gol.models.build_maskrcnn_r50_fpn"
    weights_backbone: str | None = R50_IMAGENET


@dataclass
class MaskRCNNR50FPNV2Conf(_MaskRCNNResNetFPNConf):
    _target_: str = "gol.models.build_maskrcnn_r50_fpn_v2"
    weights_backbone: str | None = R50_V2_IMAGENET


@dataclass
class MaskRCNNR101FPNConf(_MaskRCNNResNetFPNConf):
    _target_: str = "gol.models.build_maskrcnn_r101_fpn"
    weights_backbone: str | None = R101_IMAGENET


@dataclass
class MaskRCNNX101FPNConf(_MaskRCNNResNetFPNConf):
    _target_: str = "gol.models.build_maskrcnn_x101_fpn"
    weights_backbone: str | None = X101_IMAGENET


@dataclass
class CascadeR101FPNConf(_ResNetFPNConf):
    """Cascade Mask R-CNN R101 (the paper's C-R101): three box stages, one entry per stage in each ``stage_*``.

    No ``box_loss``: every stage already uses the official cascade configs' smooth-L1 (beta 1), normalised as mmdet.
    """

    _target_: str = "gol.models.build_cascade_r101_fpn"
    weights_backbone: str | None = R101_IMAGENET
    rpn_post_nms_top_n_train: int = 2000  # the official Cascade configs keep 2000 training proposals
    stage_iou_thresholds: list[float] = field(default_factory=lambda: [0.5, 0.6, 0.7])  # Cascade R-CNN
    stage_loss_weights: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.25])  # official configs
    # Box-coder weights (wx, wy, ww, wh): the inverse target stds of the official configs.
    stage_box_weights: list[list[float]] = field(
        default_factory=lambda: [[10.0, 10.0, 5.0, 5.0], [20.0, 20.0, 10.0, 10.0], [30.0, 30.0, 15.0, 15.0]]
    )


@dataclass
class HTCR101FPNConf(CascadeR101FPNConf):
    """Hybrid Task Cascade R101 without the semantic branch (the paper's H-R101): Cascade R101's options, with
    interleaved box and mask execution and the mask information flow (``gol.models.htc``)."""

    _target_: str = "gol.models.build_htc_r101_fpn"


@dataclass
class TinyDetectorConf(_MaskRCNNConf):
    """The CPU demo detector (``gol.models.build_tiny``); widths and depths are tunable."""

    _target_: str = "gol.models.build_tiny"
    weights_backbone: str | None = None  # always null: no ImageNet backbone (the key lets paper cells compose)
    stage_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    convs_per_stage: int = 2
    fpn_channels: int = 64
    anchor_sizes: list[int] = field(default_factory=lambda: [12, 24, 48, 96])
    roi_canonical_scale: int = 56
    box_head_width: int = 256
    mask_head_channels: list[int] = field(default_factory=lambda: [32, 32])
    box_batch_size_per_image: int = 64  # RoIAlign's backward over the sampled RoIs is the largest part of a CPU step
    rpn_pre_nms_top_n_train: int = 600
    rpn_pre_nms_top_n_test: int = 300
    rpn_post_nms_top_n_train: int = 300
    rpn_post_nms_top_n_test: int = 200
    box_detections_per_img: int = 50  # images hold at most 4 objects; every kept detection costs a mask at test


SCHEMAS: dict[str, type] = {
    "tiny_schema": TinyDetectorConf,
    "maskrcnn_r50_fpn_schema": MaskRCNNR50FPNConf,
    "maskrcnn_r50_fpn_v2_schema": MaskRCNNR50FPNV2Conf,
    "maskrcnn_r101_fpn_schema": MaskRCNNR101FPNConf,
    "maskrcnn_x101_fpn_schema": MaskRCNNX101FPNConf,
    "cascade_r101_fpn_schema": CascadeR101FPNConf,
    "htc_r101_fpn_schema": HTCR101FPNConf,
}
