"""Detector builders: structure, options, forward passes in train and eval mode."""

from __future__ import annotations

import gc

import pytest
import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.ops import FrozenBatchNorm2d

from gol.activations import Gumbel, Softmax
from gol.config.detector import BackboneNorm, BoxLoss
from gol.losses import CrossEntropyLoss
from gol.models import (
    GolRoIHeads,
    GolTransform,
    NormedConv2d,
    NormedLinear,
    build_maskrcnn_r50_fpn,
    build_maskrcnn_r50_fpn_v2,
    build_maskrcnn_r101_fpn,
    build_maskrcnn_x101_fpn,
    build_tiny,
)
from gol.models.roi_align import AlignedMultiScaleRoIAlign

K = 5
SIZES = {"train_sizes": (64, 80), "test_size": 72, "max_size": 120}
# Small RPN/RoI budgets keep the ResNet forward passes quick on CPU; the settings themselves are tested below.
QUICK_RESNET = {
    "rpn_post_nms_top_n_train": 200,
    "rpn_post_nms_top_n_test": 50,
    "box_batch_size_per_image": 64,
    "box_detections_per_img": 10,
}
# mmdetection 2.21's detector, as the official GOL configs train it.
MMDET_OPTIONS = {"box_loss": "l1", "roi_align": "mmdet", "backbone_norm": "frozen_stats"}


def _loss(activation=Softmax) -> CrossEntropyLoss:
    return CrossEntropyLoss(activation=activation(), num_classes=K)


@pytest.mark.parametrize(
    "builder",
    [build_tiny, build_maskrcnn_r50_fpn, build_maskrcnn_r50_fpn_v2, build_maskrcnn_r101_fpn, build_maskrcnn_x101_fpn],
)
def test_builder_structure(builder) -> None:
    cls_loss = _loss(Gumbel)
    # torchvision's norm: without weights, ordinary BatchNorm (mmdet's frozen_stats is checked in test_models_norm)
    norm = {} if builder is build_tiny else {"backbone_norm": "torchvision"}
    model = builder(num_classes=K, cls_loss=cls_loss, **SIZES, **norm)
    try:
        assert isinstance(model, MaskRCNN)
        heads = model.roi_heads
        assert isinstance(heads, GolRoIHeads) and heads.cls_loss is cls_loss
        assert isinstance(model.transform, GolTransform)
        assert heads.box_predictor.cls_score.out_features == cls_loss.num_logits
        assert heads.box_predictor.bbox_pred.out_features == (K + 1) * 4
        assert heads.mask_predictor.mask_fcn_logits.out_channels == K + 1
        # The loss's official classifier initialisation was applied.
        reference = nn.Linear(heads.box_predictor.cls_score.in_features, cls_loss.num_logits)
        cls_loss.init_classifier(reference)
        torch.testing.assert_close(heads.box_predictor.cls_score.weight, reference.weight)
        torch.testing.assert_close(heads.box_predictor.cls_score.bias, reference.bias)
        # LVIS test defaults.
        assert heads.score_thresh == 1e-4 and heads.nms_thresh == 0.5
        # No weights: nothing frozen, ordinary BatchNorm.
        assert all(p.requires_grad for p in model.parameters())
        assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    finally:
        del model
        gc.collect()


@pytest.mark.parametrize("builder", [build_tiny, build_maskrcnn_r50_fpn])
def test_options_reach_the_model(builder) -> None:
    model = builder(
        num_classes=K,
        cls_loss=_loss(),
        train_sizes=[60, 70],
        test_size=66,
        max_size=100,
        box_score_thresh=0.2,
        box_nms_thresh=0.3,
        box_detections_per_img=7,
        box_batch_size_per_image=32,
        rpn_pre_nms_top_n_train=111,
        rpn_pre_nms_top_n_test=55,
        rpn_post_nms_top_n_train=44,
        rpn_post_nms_top_n_test=22,
        normed_mask=True,
        classifier_temperature=5.0,
    )
    heads = model.roi_heads
    assert (heads.score_thresh, heads.nms_thresh, heads.detections_per_img) == (0.2, 0.3, 7)
    assert heads.fg_bg_sampler.batch_size_per_image == 32
    assert model.rpn._pre_nms_top_n == {"training": 111, "testing": 55}
    assert model.rpn._post_nms_top_n == {"training": 44, "testing": 22}
    assert isinstance(heads.box_predictor.cls_score, NormedLinear)
    assert heads.box_predictor.cls_score.temperature == 5.0
    assert isinstance(heads.mask_predictor.mask_fcn_logits, NormedConv2d)
    assert heads.mask_predictor.mask_fcn_logits.temperature == 20.0
    assert model.transform.train_sizes == (60, 70)
    assert (model.transform.test_size, model.transform.max_size) == (66, 100)


def test_tiny_widths_are_options() -> None:
    model = build_tiny(
        num_classes=K,
        cls_loss=_loss(),
        **SIZES,
        stage_channels=(8, 16, 24, 32),
        convs_per_stage=1,
        fpn_channels=16,
        box_head_width=64,
        mask_head_channels=(16,),
    )
    assert model.backbone.out_channels == 16
    assert [stage[0].out_channels for stage in model.backbone.stages] == [8, 16, 24, 32]
    assert model.roi_heads.box_predictor.cls_score.in_features == 64
    assert model.roi_heads.mask_predictor.conv5_mask.in_channels == 16


@pytest.mark.parametrize(
    ("builder", "options"),
    [
        (build_tiny, {"box_detections_per_img": 20}),
        (build_maskrcnn_r50_fpn, QUICK_RESNET),
        (build_maskrcnn_r50_fpn, {**QUICK_RESNET, **MMDET_OPTIONS}),
    ],
    ids=["tiny", "r50", "r50-mmdet"],
)
def test_forward_train_and_eval(builder, options, batch) -> None:
    torch.manual_seed(0)
    model = builder(num_classes=K, cls_loss=_loss(Gumbel), **SIZES, **options)
    images, targets = batch(num_classes=K, height=64, width=96)
    losses = model.train()(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    sum(losses.values()).backward()
    assert model.roi_heads.box_predictor.cls_score.weight.grad is not None
    assert model.roi_heads.mask_predictor.mask_fcn_logits.weight.grad is not None

    model.eval()
    with torch.no_grad():
        outputs = model([images[0], images[1][:, :50, :70]])
    for output, (height, width) in zip(outputs, [(64, 96), (50, 70)]):
        n = len(output["boxes"])
        assert 0 < n <= model.roi_heads.detections_per_img
        assert output["masks"].shape == (n, 1, height, width)  # pasted back at the original size
        assert output["boxes"][:, 2].max() <= width and output["boxes"][:, 3].max() <= height
        assert output["labels"].min() >= 1 and output["labels"].max() <= K
        assert ((output["scores"] > 0) & (output["scores"] <= 1)).all()


def test_mmdet_options_reach_the_model() -> None:
    model = build_maskrcnn_r50_fpn(num_classes=K, cls_loss=_loss(), **SIZES, **MMDET_OPTIONS)
    heads = model.roi_heads
    assert heads.box_loss is BoxLoss.l1
    assert isinstance(heads.box_roi_pool, AlignedMultiScaleRoIAlign) and heads.box_roi_pool.output_size == (7, 7)
    assert isinstance(heads.mask_roi_pool, AlignedMultiScaleRoIAlign) and heads.mask_roi_pool.output_size == (14, 14)
    norms = [m for m in model.backbone.body.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]
    # No weights: no statistics to freeze, BatchNorm learns them (frozen initial ones make the loss diverge).
    assert len(norms) == 53 and all(type(m) is nn.BatchNorm2d for m in norms)
    # No weights: every stage trains, the BN affine parameters included.
    assert all(p.requires_grad for p in model.parameters())
    assert BackboneNorm("frozen_stats") is BackboneNorm.frozen_stats


def test_bad_options_fail_with_one_line_errors() -> None:
    with pytest.raises(ValueError, match="built for 5 classes but the detector for 6"):
        build_tiny(num_classes=6, cls_loss=_loss(), **SIZES)
    with pytest.raises(ValueError, match="box_nms_thresh"):
        build_tiny(num_classes=K, cls_loss=_loss(), **SIZES, box_nms_thresh=0.0)
    with pytest.raises(ValueError, match="anchor_sizes"):
        build_tiny(num_classes=K, cls_loss=_loss(), **SIZES, anchor_sizes=(16, 32))
    with pytest.raises(ValueError, match="train_sizes"):
        build_tiny(num_classes=K, cls_loss=_loss(), train_sizes=[], test_size=64, max_size=100)
    with pytest.raises(ValueError, match="trainable_backbone_layers=3 needs pretrained weights"):
        build_maskrcnn_r50_fpn(num_classes=K, cls_loss=_loss(), **SIZES, trainable_backbone_layers=3)
    with pytest.raises(ValueError, match="detector.roi_align must be one of 'torchvision', 'mmdet', got 'mmcv'"):
        build_maskrcnn_r50_fpn(num_classes=K, cls_loss=_loss(), **SIZES, roi_align="mmcv")
    with pytest.raises(ValueError) as error:
        build_tiny(num_classes=K, cls_loss=_loss(), **SIZES, classifier_temperature=-1.0)
    assert "\n" not in str(error.value)
