"""Cascade Mask R-CNN: stages, shared activation, losses, ensemble scores, weights; the HTC refusal."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.utils import instantiate
from torch import Tensor, nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import RPNHead, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

from gol.activations import Activation, Gumbel, Sigmoid, Softmax
from gol.config import detector as detector_config
from gol.data.stats import CategoryStats
from gol.losses import CrossEntropyLoss, DropLoss, EQLLoss, SeesawLoss
from gol.losses.base import ClassificationLoss
from gol.models import (
    CascadeRoIHeads,
    DetectorUnavailableError,
    GolTransform,
    WeightsMismatchError,
    build_cascade_r101_fpn,
    build_htc_r101_fpn,
    build_tiny,
    check_detector_available,
)
from gol.models.assemble import DetectorOptions
from gol.models.cascade import CascadeOptions, assemble_cascade, stage_losses
from gol.models.htc import HTC_UNAVAILABLE
from gol.models.norm import FrozenStatsBatchNorm2d
from gol.models.roi_align import AlignedMultiScaleRoIAlign
from gol.models.tiny import TinyBackbone

K = 5
CONF = Path(__file__).resolve().parents[2] / "conf"
LEVELS = ["0", "1", "2", "3"]
CASCADE_LOSS_KEYS = {
    *(f"loss_{name}_stage{s}" for name in ("classifier", "box_reg") for s in range(3)),
    "loss_mask",
    "loss_objectness",
    "loss_rpn_box_reg",
}


def _stats() -> CategoryStats:
    return CategoryStats(
        category_ids=tuple(range(1, K + 1)),
        names=tuple(f"c{i}" for i in range(K)),
        image_count=torch.tensor([200, 120, 40, 8, 2]),
        instance_count=torch.tensor([400, 200, 50, 9, 2]),
        frequency=("f", "f", "c", "r", "r"),
        num_images=300,
    )


def _roi_align(size: int) -> MultiScaleRoIAlign:
    return MultiScaleRoIAlign(LEVELS, output_size=size, sampling_ratio=2, canonical_scale=56, canonical_level=4)


def _tiny_cascade(
    cls_loss: ClassificationLoss, *, seed: int = 0, box_loss: str = "smooth_l1", **cascade: object
) -> MaskRCNN:
    """The cascade heads on the tiny backbone (the R101 builder is exercised once, below)."""
    torch.manual_seed(seed)
    backbone = TinyBackbone(stage_channels=(8, 16, 24, 32), convs_per_stage=1, fpn_channels=16)
    return assemble_cascade(
        backbone=backbone,
        num_classes=K,
        cls_loss=cls_loss,
        options=DetectorOptions(
            train_sizes=(96,),
            test_size=96,
            max_size=128,
            box_batch_size_per_image=64,
            rpn_post_nms_top_n_train=100,
            rpn_post_nms_top_n_test=50,
            box_detections_per_img=50,
            box_loss=box_loss,
        ),
        cascade=CascadeOptions(**cascade),
        anchor_generator=AnchorGenerator(((12,), (24,), (48,), (96,)), ((0.5, 1.0, 2.0),) * 4),
        rpn_head=RPNHead(16, 3),
        box_roi_pool=_roi_align(7),
        box_head_factory=lambda: TwoMLPHead(16 * 7 * 7, 64),
        box_head_width=64,
        mask_roi_pool=_roi_align(14),
        mask_head=MaskRCNNHeads(16, [16], 1),
        mask_head_width=16,
        mask_dim_reduced=16,
    )


def _train_losses(model: nn.Module, batch: Callable, seed: int = 1) -> dict[str, Tensor]:
    images, targets = batch(num_classes=K)
    torch.manual_seed(seed)  # the same anchors and RoIs sampled by every model built alike
    return model.train()(images, targets)


LOSSES = {
    "ce-softmax": lambda: CrossEntropyLoss(activation=Softmax(), num_classes=K),
    "ce-sigmoid": lambda: CrossEntropyLoss(activation=Sigmoid(), num_classes=K),
    "ce-gumbel": lambda: CrossEntropyLoss(activation=Gumbel(), num_classes=K),
    "eql-gumbel": lambda: EQLLoss(activation=Gumbel(), num_classes=K, stats=_stats()),
    "droploss-gumbel": lambda: DropLoss(activation=Gumbel(), num_classes=K, stats=_stats(), seed=3),
    "seesaw-softmax": lambda: SeesawLoss(activation=Softmax(), num_classes=K),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_train_step_gives_finite_per_stage_losses_and_gradients(name: str, batch) -> None:
    cls_loss = LOSSES[name]()
    model = _tiny_cascade(cls_loss)
    heads = model.roi_heads
    assert isinstance(heads, CascadeRoIHeads) and heads.num_stages == 3
    assert heads.cls_loss[0] is cls_loss
    losses = _train_losses(model, batch)
    assert set(losses) == CASCADE_LOSS_KEYS
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for stage in range(3):
        assert heads.box_predictor[stage].cls_score.weight.grad is not None
        assert heads.box_predictor[stage].bbox_pred.weight.grad is not None
    assert heads.mask_predictor.mask_fcn_logits.weight.grad is not None
    if name == "seesaw-softmax":  # each stage counts the labels of its own samples
        counts = [loss.cum_samples for loss in heads.cls_loss]
        assert all(c.sum() > 0 for c in counts)
        assert len({c.data_ptr() for c in counts}) == 3


@pytest.mark.parametrize("name", ["ce-gumbel", "droploss-gumbel", "seesaw-softmax"])
def test_stages_share_one_activation_but_own_their_loss_state(name: str) -> None:
    cls_loss = LOSSES[name]()
    activation = cls_loss.activation
    model = _tiny_cascade(cls_loss)
    losses = list(model.roi_heads.cls_loss)
    assert losses[0] is cls_loss and len({id(loss) for loss in losses}) == 3
    assert all(loss.activation is activation for loss in losses)
    assert all(type(loss) is type(cls_loss) and loss.num_logits == cls_loss.num_logits for loss in losses)
    for loss in losses[1:]:  # buffers are copies, not views of stage 0's
        for (key, mine), theirs in zip(loss.state_dict().items(), cls_loss.state_dict().values()):
            if isinstance(mine, Tensor):
                assert mine.data_ptr() != theirs.data_ptr() and torch.equal(mine, theirs), key
    if isinstance(cls_loss, DropLoss):  # distinct, reproducible random streams per stage
        seeds = [loss.seed for loss in losses]
        assert seeds[0] == 3 and len(set(seeds)) == 3
        assert [loss.seed for loss in stage_losses(LOSSES[name](), 3)] == seeds
    for loss in losses:  # every stage's loss state is in the model's state_dict
        prefix = f"roi_heads.cls_loss.{losses.index(loss)}."
        assert all(prefix + key in model.state_dict() for key in loss.state_dict())


def test_stage_losses_copy_does_not_duplicate_the_activation() -> None:
    activation: Activation = Gumbel()
    cls_loss = EQLLoss(activation=activation, num_classes=K, stats=_stats())
    losses = stage_losses(cls_loss, 4)
    assert [loss.activation for loss in losses] == [activation] * 4
    assert all(loss.activation is activation for loss in losses)


def test_stage_loss_weights_scale_each_stage(batch) -> None:
    default = _train_losses(_tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K)), batch)
    unit = _train_losses(
        _tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K), loss_weights=(1.0, 1.0, 1.0)), batch
    )
    for stage, weight in enumerate((1.0, 0.5, 0.25)):
        for name in ("classifier", "box_reg"):
            key = f"loss_{name}_stage{stage}"
            torch.testing.assert_close(default[key], weight * unit[key])
    torch.testing.assert_close(default["loss_mask"], unit["loss_mask"])


def test_later_stages_do_not_backpropagate_into_earlier_ones(batch) -> None:
    model = _tiny_cascade(CrossEntropyLoss(activation=Sigmoid(), num_classes=K))
    losses = _train_losses(model, batch)
    (losses["loss_classifier_stage2"] + losses["loss_box_reg_stage2"]).backward()
    heads = model.roi_heads
    for stage in (0, 1):  # the refined boxes are detached: stage 2's loss reaches no earlier head
        assert all(p.grad is None for p in heads.box_head[stage].parameters())
        assert all(p.grad is None for p in heads.box_predictor[stage].parameters())
    assert heads.box_predictor[2].cls_score.weight.grad is not None


def test_one_stage_samples_exactly_as_torchvision(batch) -> None:
    model = _tiny_cascade(CrossEntropyLoss(activation=Softmax(), num_classes=K))
    heads = model.roi_heads
    stock = RoIHeads(
        heads.box_roi_pool,
        heads.box_head[0],
        heads.box_predictor[0],
        0.5,
        0.5,
        64,
        0.25,
        (10.0, 10.0, 5.0, 5.0),
        0.05,
        0.5,
        100,
    )
    images, targets = batch(num_classes=K)
    g = torch.Generator().manual_seed(0)
    proposals = []
    for _ in images:
        corner = torch.rand(80, 2, generator=g) * 70
        proposals.append(torch.cat([corner, corner + torch.rand(80, 2, generator=g) * 40 + 5], dim=1))
    torch.manual_seed(5)
    ours = heads.select_training_samples(0, proposals, targets)
    torch.manual_seed(5)
    boxes, matched, labels, regression_targets = stock.select_training_samples(proposals, targets)
    for mine, theirs in zip((ours.proposals, ours.matched_idxs, ours.labels), (boxes, matched, labels)):
        for a, b in zip(mine, theirs):
            torch.testing.assert_close(a, b)
    torch.testing.assert_close(ours.regression_targets, torch.cat(regression_targets))
    # Every ground-truth box is appended as a proposal, is flagged as such and, if sampled, is positive.
    for from_gt, image_labels, target in zip(ours.from_gt, ours.labels, targets):
        assert 0 < int(from_gt.sum()) <= len(target["boxes"])
        assert (image_labels[from_gt] > 0).all()


def test_every_stage_adds_the_ground_truth(batch) -> None:
    heads = _tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K)).roi_heads
    _, targets = batch(num_classes=K)
    empty = [torch.zeros(0, 4) for _ in targets]
    for stage in range(heads.num_stages):
        samples = heads.select_training_samples(stage, empty, targets)
        for boxes, labels, from_gt, target in zip(samples.proposals, samples.labels, samples.from_gt, targets):
            assert from_gt.all()
            torch.testing.assert_close(boxes, target["boxes"])
            assert torch.equal(labels, target["labels"])
        assert samples.regression_targets.abs().max() == 0  # a box is its own target


@pytest.mark.parametrize(
    ("name", "probability"),
    [
        ("ce-sigmoid", torch.sigmoid),
        ("ce-gumbel", lambda q: torch.exp(-torch.exp(-q))),
        ("ce-softmax", lambda q: torch.softmax(q, dim=1)),
        ("eql-gumbel", lambda q: torch.exp(-torch.exp(-q))),
    ],
)
def test_test_scores_average_every_stage_activation_on_the_final_boxes(name: str, probability) -> None:
    cls_loss = LOSSES[name]()
    model = _tiny_cascade(cls_loss).eval()
    heads = model.roi_heads
    heads.score_thresh, heads.nms_thresh, heads.detections_per_img = 0.0, 1.0, 10_000
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for stage in range(heads.num_stages):
            predictor = heads.box_predictor[stage]
            predictor.cls_score.weight.normal_(0.0, 0.5, generator=g)  # stages disagree
            predictor.cls_score.bias.normal_(0.0, 1.0, generator=g)
            predictor.bbox_pred.weight.normal_(0.0, 0.05, generator=g)  # stages 0 and 1 move the boxes
            predictor.bbox_pred.bias.normal_(0.0, 1.0, generator=g)
        heads.box_predictor[2].bbox_pred.weight.zero_()  # the last stage keeps them: its boxes are checkable
        heads.box_predictor[2].bbox_pred.bias.zero_()
    shapes = [(96, 96)]
    features = {level: torch.randn(1, 16, 24 // 2**i, 24 // 2**i, generator=g) for i, level in enumerate(LEVELS)}
    corner = torch.rand(30, 2, generator=g) * 50
    proposals = [torch.cat([corner, corner + 25], dim=1)]
    with torch.no_grad():
        (result,), _ = heads(features, proposals, shapes)
        boxes = proposals[0]
        for stage in (0, 1):  # the last stage's input boxes
            deltas = heads.box_predictor[stage](heads.box_head[stage](heads.box_roi_pool(features, [boxes], shapes)))[1]
            boxes = heads.box_coders[stage].decode_single(deltas, boxes).clamp(0, 96)
        pooled = heads.box_roi_pool(features, [boxes], shapes)
        expected = torch.stack(
            [probability(heads.box_predictor[s](heads.box_head[s](pooled))[0])[:, -K:] for s in range(3)]
        ).mean(dim=0)  # (R, K), column k is label k + 1
    assert not torch.allclose(boxes, proposals[0], atol=0.5)  # the stages did refine
    assert len(result["scores"]) == expected.numel()  # nothing filtered
    for label in range(1, K + 1):
        torch.testing.assert_close(
            result["scores"][result["labels"] == label].sort().values, expected[:, label - 1].sort().values
        )
    # Class-agnostic boxes: every class of a RoI has the RoI's box.
    assert torch.isclose(result["boxes"][:, None], boxes[None], atol=1e-4).all(dim=2).any(dim=1).all()
    assert result["masks"].shape == (expected.numel(), 1, 28, 28)


def test_eval_returns_torchvision_detections(batch) -> None:
    model = _tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K)).eval()
    images, _ = batch(num_classes=K, height=64, width=96)
    with torch.no_grad():
        outputs = model([images[0], images[1][:, :50, :70]])
    for output, (height, width) in zip(outputs, [(64, 96), (50, 70)]):
        n = len(output["boxes"])
        assert set(output) == {"boxes", "labels", "scores", "masks"}
        assert 0 < n <= model.roi_heads.detections_per_img
        assert output["masks"].shape == (n, 1, height, width)  # pasted back at the original size
        assert output["boxes"][:, 2].max() <= width and output["boxes"][:, 3].max() <= height
        assert output["labels"].min() >= 1 and output["labels"].max() <= K
        assert ((output["scores"] > 0) & (output["scores"] <= 1)).all()
        assert (output["scores"][:-1] >= output["scores"][1:]).all()


def test_state_dict_round_trip_keeps_weights_and_loss_state(batch) -> None:
    model = _tiny_cascade(DropLoss(activation=Gumbel(), num_classes=K, stats=_stats(), seed=3))
    sum(_train_losses(model, batch).values()).backward()  # advances every stage's random stream
    state = model.state_dict()
    assert [state[f"roi_heads.cls_loss.{s}._extra_state"]["draws"] for s in range(3)] == [1, 1, 1]
    other = _tiny_cascade(DropLoss(activation=Gumbel(), num_classes=K, stats=_stats(), seed=9), seed=7)
    other.load_state_dict(state)
    for key, value in other.state_dict().items():
        if isinstance(value, Tensor):
            torch.testing.assert_close(value, state[key], msg=key)
        else:
            assert value == state[key], key
    images, _ = batch(num_classes=K)
    with torch.no_grad():
        for a, b in zip(model.eval()(images), other.eval()(images)):
            for key in a:
                torch.testing.assert_close(a[key], b[key])


def test_options_reach_the_heads() -> None:
    model = _tiny_cascade(
        CrossEntropyLoss(activation=Gumbel(), num_classes=K),
        iou_thresholds=[0.4, 0.8],
        loss_weights=[1.0, 0.3],
        box_weights=[[1, 2, 3, 4], [5, 6, 7, 8]],
    )
    heads = model.roi_heads
    assert heads.num_stages == 2 and len(heads.cls_loss) == 2
    assert [(m.high_threshold, m.low_threshold) for m in heads.proposal_matchers] == [(0.4, 0.4), (0.8, 0.8)]
    assert [c.weights for c in heads.box_coders] == [(1.0, 2.0, 3.0, 4.0), (5.0, 6.0, 7.0, 8.0)]
    assert heads.loss_weights == (1.0, 0.3)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"stage_loss_weights": [1.0, 0.5]}, "one entry per cascade stage"),
        ({"stage_iou_thresholds": [0.5, 0.6, 1.2]}, "stage_iou_thresholds must lie in"),
        ({"stage_box_weights": [[10, 10, 5], [20, 20, 10, 10], [30, 30, 15, 15]]}, "four positive numbers"),
        ({"stage_loss_weights": [0.0, 0.0, 0.0]}, "not all 0"),
        ({"trainable_backbone_layers": 3}, "needs pretrained weights"),
        ({"weights": "/nonexistent/cascade.pth"}, "weights file not found"),
        ({"roi_align": "aligned"}, "detector.roi_align must be one of 'torchvision', 'mmdet'"),
        ({"backbone_norm": "bn"}, "detector.backbone_norm must be one of"),
    ],
)
def test_bad_options_fail_before_building_with_one_line_errors(options: dict, match: str) -> None:
    with pytest.raises((ValueError, FileNotFoundError), match=match) as error:
        build_cascade_r101_fpn(
            num_classes=K, cls_loss=LOSSES["ce-gumbel"](), train_sizes=(64,), test_size=64, max_size=96, **options
        )
    assert "\n" not in str(error.value)


def test_mmdet_options_reach_the_cascade() -> None:
    model = build_cascade_r101_fpn(
        num_classes=K, cls_loss=LOSSES["ce-gumbel"](), train_sizes=(64,), test_size=64, max_size=96,
        roi_align="mmdet", backbone_norm="frozen_stats",
    )  # fmt: skip
    heads = model.roi_heads
    assert isinstance(heads.box_roi_pool, AlignedMultiScaleRoIAlign) and heads.box_roi_pool.output_size == (7, 7)
    assert isinstance(heads.mask_roi_pool, AlignedMultiScaleRoIAlign) and heads.mask_roi_pool.output_size == (14, 14)
    norms = [m for m in model.backbone.body.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]
    assert norms and all(isinstance(m, FrozenStatsBatchNorm2d) for m in norms)
    del model, heads
    gc.collect()


def test_the_cascade_refuses_the_mask_rcnn_box_loss() -> None:
    with pytest.raises(ValueError, match="box_loss=l1 is a Mask R-CNN option"):
        _tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K), box_loss="l1")


def test_build_cascade_r101_fpn_forward_and_weights_file(batch, tmp_path: Path) -> None:
    sizes = {"train_sizes": (64,), "test_size": 64, "max_size": 96}
    quick = {
        "rpn_post_nms_top_n_train": 100,
        "rpn_post_nms_top_n_test": 50,
        "box_batch_size_per_image": 64,
        "box_detections_per_img": 10,
    }
    cls_loss = LOSSES["ce-gumbel"]()
    torch.manual_seed(0)
    model = build_cascade_r101_fpn(num_classes=K, cls_loss=cls_loss, **sizes, **quick)
    heads = model.roi_heads
    assert isinstance(heads, CascadeRoIHeads) and isinstance(model.transform, GolTransform)
    assert [m.high_threshold for m in heads.proposal_matchers] == [0.5, 0.6, 0.7]
    assert [c.weights for c in heads.box_coders] == [(10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15)]
    assert heads.loss_weights == (1.0, 0.5, 0.25)
    assert (heads.score_thresh, heads.nms_thresh) == (1e-4, 0.5)
    assert all(head.fc6.in_features == 256 * 7 * 7 for head in heads.box_head)  # 2FC head on 7x7 RoIAlign
    for stage in range(3):
        assert heads.box_head[stage].fc7.out_features == 1024
        assert heads.box_predictor[stage].bbox_pred.out_features == 4  # class-agnostic
        assert heads.box_predictor[stage].cls_score.out_features == cls_loss.num_logits
        torch.testing.assert_close(heads.box_predictor[stage].cls_score.bias, torch.full((K + 1,), -2.0))
    assert heads.mask_predictor.mask_fcn_logits.out_channels == K + 1
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())  # no weights: all trains

    images, targets = batch(num_classes=K, images=1, height=64, width=64)
    losses = model.train()(images, targets)
    assert set(losses) == CASCADE_LOSS_KEYS and all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        (output,) = model(images)
    assert output["masks"].shape[1:] == (1, 64, 64) and len(output["boxes"]) <= 10

    path = tmp_path / "cascade.pth"
    torch.save(model.state_dict(), path)
    expected = {k: v for k, v in model.state_dict().items() if isinstance(v, Tensor)}
    del model, heads, losses
    gc.collect()
    # A gol cascade file loads whole (and, being pretrained, freezes BN and the first backbone stages).
    loaded = build_cascade_r101_fpn(num_classes=K, cls_loss=LOSSES["ce-gumbel"](), **sizes, weights=str(path))
    assert any(isinstance(m, FrozenBatchNorm2d) for m in loaded.modules())
    assert not loaded.backbone.body.layer1[0].conv1.weight.requires_grad
    for key, value in loaded.state_dict().items():
        if key in expected and not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(value, expected[key], msg=key)
    del loaded
    gc.collect()
    # A Mask R-CNN file is refused, saying what it holds.
    tiny = tmp_path / "tiny.pth"
    torch.save(build_tiny(num_classes=K, cls_loss=LOSSES["ce-gumbel"](), **sizes).state_dict(), tiny)
    with pytest.raises(WeightsMismatchError, match="does not fit Cascade Mask R-CNN ResNet-101 FPN.*tiny detector"):
        build_cascade_r101_fpn(num_classes=K, cls_loss=LOSSES["ce-gumbel"](), **sizes, weights=str(tiny))
    gc.collect()


def _compose_detector(option: str):
    for name, node in detector_config.SCHEMAS.items():
        ConfigStore.instance().store(name=name, node=node)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(overrides=[f"+detector={option}", "detector.box_nms_thresh=0.3"]).detector


def test_cascade_config_defaults_are_the_official_ones() -> None:
    cfg = _compose_detector("cascade_r101_fpn")
    check_detector_available(cfg._target_)  # available: no error
    factory = instantiate(cfg, _convert_="all")
    assert factory.func is build_cascade_r101_fpn
    assert factory.keywords["stage_iou_thresholds"] == [0.5, 0.6, 0.7]
    assert factory.keywords["stage_loss_weights"] == [1.0, 0.5, 0.25]
    assert factory.keywords["stage_box_weights"] == [[10, 10, 5, 5], [20, 20, 10, 10], [30, 30, 15, 15]]
    assert (factory.keywords["box_score_thresh"], factory.keywords["box_detections_per_img"]) == (1e-4, 300)


def test_htc_is_declared_but_refused_with_one_line() -> None:
    assert "\n" not in HTC_UNAVAILABLE and "detector=cascade_r101_fpn" in HTC_UNAVAILABLE
    assert "mask information flow" in HTC_UNAVAILABLE
    cfg = _compose_detector("htc_r101_fpn")  # composes, with the cascade's options
    with pytest.raises(DetectorUnavailableError, match="Hybrid Task Cascade") as error:
        check_detector_available(cfg._target_)  # what config validation calls, before any data is loaded
    assert str(error.value) == HTC_UNAVAILABLE and isinstance(error.value, ValueError)
    factory = instantiate(cfg, _convert_="all")
    with pytest.raises(DetectorUnavailableError, match="use detector=cascade_r101_fpn"):
        factory(num_classes=K, cls_loss=LOSSES["ce-gumbel"](), train_sizes=(64,), test_size=64, max_size=96)
    with pytest.raises(DetectorUnavailableError):
        build_htc_r101_fpn(num_classes=K, cls_loss=LOSSES["ce-gumbel"](), train_sizes=(64,), test_size=64, max_size=96)
    check_detector_available("gol.models.build_maskrcnn_r101_fpn")
    check_detector_available("no.such.module.builder")  # left to instantiate, which names it
