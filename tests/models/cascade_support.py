"""The cascade heads on the tiny backbone, shared by the Cascade and HTC tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import RPNHead, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.ops import MultiScaleRoIAlign

from gol.activations import Gumbel, Sigmoid, Softmax
from gol.config import detector as detector_config
from gol.data.stats import CategoryStats
from gol.losses import CrossEntropyLoss, DropLoss, EQLLoss, EQLv2Loss, SeesawLoss
from gol.losses.base import ClassificationLoss
from gol.models import CascadeRoIHeads
from gol.models.assemble import DetectorOptions
from gol.models.cascade import CascadeOptions, assemble_cascade
from gol.models.tiny import TinyBackbone

K = 5
CONF = Path(__file__).resolve().parents[2] / "conf"
LEVELS = ["0", "1", "2", "3"]


def stats() -> CategoryStats:
    return CategoryStats(
        category_ids=tuple(range(1, K + 1)),
        names=tuple(f"c{i}" for i in range(K)),
        image_count=torch.tensor([200, 120, 40, 8, 2]),
        instance_count=torch.tensor([400, 200, 50, 9, 2]),
        frequency=("f", "f", "c", "r", "r"),
        num_images=300,
    )


def roi_align(size: int) -> MultiScaleRoIAlign:
    return MultiScaleRoIAlign(LEVELS, output_size=size, sampling_ratio=2, canonical_scale=56, canonical_level=4)


def tiny_cascade(
    cls_loss: ClassificationLoss,
    *,
    seed: int = 0,
    num_classes: int = K,
    normed_mask: bool = False,
    box_loss: str = "smooth_l1",
    heads: Callable[..., CascadeRoIHeads] = CascadeRoIHeads,
    **cascade: object,
) -> MaskRCNN:
    """The cascade heads (or what ``heads`` makes: ``HTCRoIHeads``) on the tiny backbone."""
    torch.manual_seed(seed)
    backbone = TinyBackbone(stage_channels=(8, 16, 24, 32), convs_per_stage=1, fpn_channels=16)
    return assemble_cascade(
        backbone=backbone,
        num_classes=num_classes,
        cls_loss=cls_loss,
        options=DetectorOptions(
            train_sizes=(96,),
            test_size=96,
            max_size=128,
            box_batch_size_per_image=64,
            rpn_post_nms_top_n_train=100,
            rpn_post_nms_top_n_test=50,
            box_detections_per_img=50,
            normed_mask=normed_mask,
            box_loss=box_loss,
        ),
        cascade=CascadeOptions(**cascade),
        anchor_generator=AnchorGenerator(((12,), (24,), (48,), (96,)), ((0.5, 1.0, 2.0),) * 4),
        rpn_head=RPNHead(16, 3),
        box_roi_pool=roi_align(7),
        box_head_factory=lambda: TwoMLPHead(16 * 7 * 7, 64),
        box_head_width=64,
        mask_roi_pool=roi_align(14),
        mask_head_factory=lambda: MaskRCNNHeads(16, [16], 1),
        mask_head_width=16,
        mask_dim_reduced=16,
        heads=heads,
    )


def train_losses(model: nn.Module, batch: Callable, seed: int = 1) -> dict[str, Tensor]:
    images, targets = batch(num_classes=K)
    torch.manual_seed(seed)  # the same anchors and RoIs sampled by every model built alike
    return model.train()(images, targets)


LOSSES = {
    "ce-softmax": lambda: CrossEntropyLoss(activation=Softmax(), num_classes=K),
    "ce-sigmoid": lambda: CrossEntropyLoss(activation=Sigmoid(), num_classes=K),
    "ce-gumbel": lambda: CrossEntropyLoss(activation=Gumbel(), num_classes=K),
    "eql-gumbel": lambda: EQLLoss(activation=Gumbel(), num_classes=K, stats=stats()),
    "droploss-gumbel": lambda: DropLoss(activation=Gumbel(), num_classes=K, stats=stats(), seed=3),
    "seesaw-softmax": lambda: SeesawLoss(activation=Softmax(), num_classes=K),
    "eqlv2-gumbel": lambda: EQLv2Loss(activation=Gumbel(), num_classes=K),
}


def fpn_features(g: torch.Generator, images: int = 1) -> dict[str, Tensor]:
    """Random FPN features of a 96 x 96 input (strides 4, 8, 16, 32; 16 channels)."""
    return {level: torch.randn(images, 16, 24 // 2**i, 24 // 2**i, generator=g) for i, level in enumerate(LEVELS)}


def disagreeing_stages(heads: CascadeRoIHeads, g: torch.Generator) -> None:
    """Random classifiers and regressors, so that stages disagree and every stage moves its boxes."""
    with torch.no_grad():
        for predictor in heads.box_predictor:
            predictor.cls_score.weight.normal_(0.0, 0.5, generator=g)
            predictor.cls_score.bias.normal_(0.0, 1.0, generator=g)
            predictor.bbox_pred.weight.normal_(0.0, 0.05, generator=g)
            predictor.bbox_pred.bias.normal_(0.0, 1.0, generator=g)
        for predictor in heads.mask_predictor:
            predictor.mask_fcn_logits.bias.normal_(0.0, 1.0, generator=g)


def compose_detector(option: str, *overrides: str) -> DictConfig:
    """The ``detector`` node of ``conf/detector/<option>.yaml`` as Hydra composes it, with ``overrides``."""
    for name, node in detector_config.SCHEMAS.items():
        ConfigStore.instance().store(name=name, node=node)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(overrides=[f"+detector={option}", "+paths.weights_root=/weights", *overrides]).detector
