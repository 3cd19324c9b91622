"""Cascade Mask R-CNN: stages, shared activation, losses, ensemble scores, weights."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from cascade_support import (
    LOSSES,
    K,
    compose_detector,
    disagreeing_stages,
    fpn_features,
    stats,
    tiny_cascade,
    train_losses,
)
from hydra.utils import instantiate
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import FrozenBatchNorm2d, roi_align

from gol.activations import AGLU, Activation, Gumbel, Sigmoid, Softmax
from gol.losses import CrossEntropyLoss, DropLoss, EQLLoss
from gol.models import (
    CascadeRoIHeads,
    GolTransform,
    NormedConv2d,
    WeightsMismatchError,
    build_cascade_r101_fpn,
    build_tiny,
)
from gol.models.cascade import stage_losses
from gol.models.roi_align import AlignedMultiScaleRoIAlign
from gol.models.weights import is_class_dependent, load_detector_weights

CONF = Path(__file__).resolve().parents[2] / "conf"
CASCADE_LOSS_KEYS = {
    *(f"loss_{name}_stage{s}" for name in ("classifier", "box_reg", "mask") for s in range(3)),
    "loss_objectness",
    "loss_rpn_box_reg",
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_train_step_gives_finite_per_stage_losses_and_gradients(name: str, batch) -> None:
    cls_loss = LOSSES[name]()
    model = tiny_cascade(cls_loss)
    heads = model.roi_heads
    assert isinstance(heads, CascadeRoIHeads) and heads.num_stages == 3
    assert heads.cls_loss[0] is cls_loss
    losses = train_losses(model, batch)
    assert set(losses) == CASCADE_LOSS_KEYS
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for stage in range(3):
        assert heads.box_predictor[stage].cls_score.weight.grad is not None
        assert heads.box_predictor[stage].bbox_pred.weight.grad is not None
        assert heads.mask_predictor[stage].mask_fcn_logits.weight.grad is not None
        assert all(p.grad is not None for p in heads.mask_head[stage].parameters())
    if name == "seesaw-softmax":  # each stage counts the labels of its own samples
        counts = [loss.cum_samples for loss in heads.cls_loss]
        assert all(c.sum() > 0 for c in counts)
        assert len({c.data_ptr() for c in counts}) == 3
    if name == "eqlv2-gumbel":  # each stage collects the gradient statistics of its own samples, as mmdet's do
        ratios = [loss.pos_neg for loss in heads.cls_loss]
        assert all(loss.neg_grad.sum() > 0 for loss in heads.cls_loss)
        assert len({r.data_ptr() for r in ratios}) == 3 and not torch.equal(ratios[0], ratios[1])


@pytest.mark.parametrize("name", ["ce-gumbel", "droploss-gumbel", "seesaw-softmax", "eqlv2-gumbel"])
def test_stages_share_one_activation_but_own_their_loss_state(name: str) -> None:
    cls_loss = LOSSES[name]()
    activation = cls_loss.activation
    model = tiny_cascade(cls_loss)
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
    cls_loss = EQLLoss(activation=activation, num_classes=K, stats=stats())
    losses = stage_losses(cls_loss, 4)
    assert [loss.activation for loss in losses] == [activation] * 4
    assert all(loss.activation is activation for loss in losses)


def test_aglu_parameters_are_one_set_shared_by_every_stage(batch) -> None:
    """The learnable activation's lambda and kappa: one module in every stage's loss, one pair of parameters for
    the optimizer (and DDP), trained by every stage's classification loss, restored through the state_dict."""
    activation = AGLU(init_lambda=0.5)
    model = tiny_cascade(DropLoss(activation=activation, num_classes=K, stats=stats(), seed=3))
    losses = list(model.roi_heads.cls_loss)
    assert all(loss.activation_params is activation.module for loss in losses)
    params = [
        p for p in model.parameters() if p is activation.module.lambda_param or p is activation.module.kappa_param
    ]
    assert len(params) == 2
    keys = [k for k in model.state_dict() if k.endswith("activation_params.lambda_param")]
    assert keys == [f"roi_heads.cls_loss.{stage}.activation_params.lambda_param" for stage in range(3)]
    grads = []
    for stage in range(3):
        activation.module.zero_grad()
        train_losses(model, batch)[f"loss_classifier_stage{stage}"].backward()
        grads.append(activation.module.lambda_param.grad.clone())
    activation.module.zero_grad()
    sum(v for k, v in train_losses(model, batch).items() if k.startswith("loss_classifier")).backward()
    assert all(float(g) != 0.0 for g in grads)
    torch.testing.assert_close(activation.module.lambda_param.grad, sum(grads))
    state = {k: v.clone() if isinstance(v, Tensor) else v for k, v in model.state_dict().items()}
    with torch.no_grad():
        activation.module.lambda_param.fill_(0.9)
    model.load_state_dict(state)
    assert float(activation.module.lambda_param.detach()) == 0.5


def test_stage_loss_weights_scale_each_stage(batch) -> None:
    default = train_losses(tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K)), batch)
    unit = train_losses(
        tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K), loss_weights=(1.0, 1.0, 1.0)), batch
    )
    for stage, weight in enumerate((1.0, 0.5, 0.25)):
        for name in ("classifier", "box_reg", "mask"):
            key = f"loss_{name}_stage{stage}"
            torch.testing.assert_close(default[key], weight * unit[key])


def test_later_stages_do_not_backpropagate_into_earlier_ones(batch) -> None:
    model = tiny_cascade(CrossEntropyLoss(activation=Sigmoid(), num_classes=K))
    losses = train_losses(model, batch)
    (losses["loss_classifier_stage2"] + losses["loss_box_reg_stage2"] + losses["loss_mask_stage2"]).backward()
    heads = model.roi_heads
    for stage in (0, 1):  # the refined boxes are detached: stage 2's losses reach no earlier head
        for module in (heads.box_head, heads.box_predictor, heads.mask_head, heads.mask_predictor):
            assert all(p.grad is None for p in module[stage].parameters())
    assert heads.box_predictor[2].cls_score.weight.grad is not None
    assert heads.mask_predictor[2].mask_fcn_logits.weight.grad is not None


def test_one_stage_samples_exactly_as_torchvision(batch) -> None:
    model = tiny_cascade(CrossEntropyLoss(activation=Softmax(), num_classes=K))
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
    heads = tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K)).roi_heads
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
def test_test_scores_activate_the_mean_raw_logits_of_every_stage_on_its_own_boxes(name: str, probability) -> None:
    """mmdet's simple_test: stage s + 1 scores stage s's refined boxes; the averaged logits are activated once."""
    model = tiny_cascade(LOSSES[name]()).eval()
    heads = model.roi_heads
    heads.score_thresh, heads.nms_thresh, heads.detections_per_img = 0.0, 1.0, 10_000
    g = torch.Generator().manual_seed(0)
    disagreeing_stages(heads, g)
    shapes = [(96, 96)]
    features = fpn_features(g)
    corner = torch.rand(30, 2, generator=g) * 50
    proposals = [torch.cat([corner, corner + 25], dim=1)]
    with torch.no_grad():
        (result,), _ = heads(features, proposals, shapes)
        boxes, stage_boxes, stage_logits = proposals[0], [], []
        for stage in range(3):  # each stage on its own input boxes, then its regression
            stage_boxes.append(boxes)
            pooled = heads.box_roi_pool(features, [boxes], shapes)
            logits, deltas = heads.box_predictor[stage](heads.box_head[stage](pooled))
            stage_logits.append(logits)
            boxes = heads.box_coders[stage].decode_single(deltas, boxes).clamp(0, 96)
        final = boxes  # the last stage's deltas on the last stage's input boxes
        expected = probability(torch.stack(stage_logits).mean(dim=0))[:, -K:]  # (R, K), column k is label k + 1
        # What the old ensemble computed: activated scores of every stage on the last stage's input boxes.
        last_input = heads.box_roi_pool(features, [stage_boxes[-1]], shapes)
        activated_mean = torch.stack(
            [probability(heads.box_predictor[s](heads.box_head[s](last_input))[0])[:, -K:] for s in range(3)]
        ).mean(dim=0)
        # Masks: each stage's mask head on the detections, sigmoid of the detection's class, averaged over stages.
        mask_features = heads.mask_roi_pool(features, [result["boxes"]], shapes)
        stage_masks = torch.stack(
            [
                heads.mask_predictor[s](heads.mask_head[s](mask_features))[
                    torch.arange(len(result["labels"])), result["labels"]
                ].sigmoid()
                for s in range(3)
            ]
        )  # (S, N, 28, 28)
    assert not torch.allclose(stage_boxes[1], stage_boxes[0], atol=0.5)  # every stage moves the boxes
    assert not torch.allclose(stage_boxes[2], stage_boxes[1], atol=0.5)
    assert not torch.allclose(final, stage_boxes[2], atol=0.5)
    assert (expected - activated_mean).abs().max() > 1e-3  # the test tells the two ensembles apart
    assert len(result["scores"]) == expected.numel()  # nothing filtered
    for label in range(1, K + 1):
        mine = result["labels"] == label
        order = result["scores"][mine].argsort()
        torch.testing.assert_close(result["scores"][mine][order], expected[:, label - 1].sort().values)
        # Class-agnostic boxes: the detection of RoI r has RoI r's final box.
        torch.testing.assert_close(result["boxes"][mine][order], final[expected[:, label - 1].argsort()])
    assert result["masks"].shape == (expected.numel(), 1, 28, 28)
    assert (stage_masks[0] - stage_masks[1]).abs().max() > 1e-3  # the stages' masks disagree
    torch.testing.assert_close(result["masks"][:, 0], stage_masks.mean(dim=0))


def test_each_stage_mask_loss_is_its_own_head_on_its_own_positives(batch) -> None:
    """loss_mask_stage{s} = w_s * BCE of stage s's mask head on the positives that stage s sampled."""
    heads = tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K)).roi_heads.train()
    g = torch.Generator().manual_seed(1)
    disagreeing_stages(heads, g)
    _, targets = batch(num_classes=K)
    shapes = [(96, 96)] * len(targets)
    features = fpn_features(g, images=len(targets))
    proposals = []
    for _ in targets:
        corner = torch.rand(60, 2, generator=g) * 60
        proposals.append(torch.cat([corner, corner + torch.rand(60, 2, generator=g) * 30 + 6], dim=1))
    sampled = []
    select = heads.select_training_samples

    def recording(stage: int, *args):
        sampled.append(select(stage, *args))
        return sampled[-1]

    heads.select_training_samples = recording  # the same RoIs the forward pass samples
    torch.manual_seed(3)
    losses = heads(features, proposals, shapes, targets)[1]
    assert len(sampled) == 3
    for stage, (samples, weight) in enumerate(zip(sampled, (1.0, 0.5, 0.25))):
        boxes, labels, gt_masks = [], [], []
        for image_boxes, image_labels, matched, target in zip(
            samples.proposals, samples.labels, samples.matched_idxs, targets
        ):
            positive = image_labels > 0
            boxes.append(image_boxes[positive])
            labels.append(image_labels[positive])
            gt_masks.append(target["masks"][matched[positive]])
        assert sum(len(b) for b in boxes) > 0
        with torch.no_grad():
            logits = heads.mask_predictor[stage](heads.mask_head[stage](heads.mask_roi_pool(features, boxes, shapes)))
        all_labels = torch.cat(labels)
        logits = logits[torch.arange(len(all_labels)), all_labels]  # (P, 28, 28), the RoI's own class
        # Mask targets: each matched ground-truth mask cropped to its RoI and resized to 28 x 28 (torchvision).
        crops = [  # RoI i reads mask i
            roi_align(m[:, None].float(), torch.cat([torch.arange(len(b))[:, None].to(b), b], dim=1), (28, 28), 1.0)
            for m, b in zip(gt_masks, boxes)
        ]  # per image (P_i, 1, 28, 28)
        by_hand = F.binary_cross_entropy_with_logits(logits, torch.cat(crops)[:, 0])
        torch.testing.assert_close(losses[f"loss_mask_stage{stage}"].detach(), weight * by_hand)
    # Stage 2's positives are not stage 0's: each stage trains on its own samples.
    assert not all(torch.equal(a, b) for a, b in zip(sampled[0].proposals, sampled[2].proposals))


def test_every_stage_has_its_own_mask_head_and_normed_logits() -> None:
    heads = tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K), normed_mask=True).roi_heads
    assert len(heads.mask_head) == len(heads.mask_predictor) == 3
    parameters = [p.data_ptr() for module in heads.mask_predictor for p in module.parameters()]
    parameters += [p.data_ptr() for module in heads.mask_head for p in module.parameters()]
    assert len(set(parameters)) == len(parameters)  # nothing shared between stages
    for predictor in heads.mask_predictor:
        assert isinstance(predictor.mask_fcn_logits, NormedConv2d)
        assert predictor.mask_fcn_logits.out_channels == K + 1
    plain = tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K)).roi_heads
    assert not any(isinstance(p.mask_fcn_logits, NormedConv2d) for p in plain.mask_predictor)


def test_weights_of_another_class_count_load_all_but_every_stage_class_layers(caplog) -> None:
    state = tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K)).state_dict()
    model = tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=7), seed=4, num_classes=7)
    with caplog.at_level(logging.INFO, logger="gol.models.weights"):
        load_detector_weights(model, state, architecture="tiny cascade", config_key="detector.weights", source="x")
    loaded = model.state_dict()
    skipped = {key for key, value in state.items() if isinstance(value, Tensor) and loaded[key].shape != value.shape}
    assert skipped == {
        f"roi_heads.{layer}.{s}.{part}.{kind}"
        for s in range(3)
        for layer, part in (("box_predictor", "cls_score"), ("mask_predictor", "mask_fcn_logits"))
        for kind in ("weight", "bias")
    }
    assert all(is_class_dependent(key) for key in skipped)
    for key, value in state.items():
        if key not in skipped and isinstance(value, Tensor) and not key.startswith("roi_heads.cls_loss."):
            torch.testing.assert_close(loaded[key], value, msg=key)
    assert "roi_heads.mask_predictor.2.mask_fcn_logits.weight" in caplog.text


def test_eval_returns_torchvision_detections(batch) -> None:
    model = tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K)).eval()
    images, _ = batch(num_classes=K, height=64, width=96)
    with torch.no_grad():
        outputs = model([images[0], images[1][:, :50, :70]])
    for output, (height, width) in zip(outputs, [(64, 96), (50, 70)]):
        n = len(output["boxes"])
        assert set(output) == {"boxes", "labels", "scores", "masks"}
        assert 0 < n <= model.roi_heads.detections_per_img
        assert output["masks"].shape == (n, 1, height, width)  # pasted back at the original size
        # Clipped to the resized image, then scaled back: a box on the border may exceed it by float rounding.
        assert output["boxes"][:, 2].max() <= width + 1e-3 and output["boxes"][:, 3].max() <= height + 1e-3
        assert output["labels"].min() >= 1 and output["labels"].max() <= K
        assert ((output["scores"] > 0) & (output["scores"] <= 1)).all()
        assert (output["scores"][:-1] >= output["scores"][1:]).all()


def test_state_dict_round_trip_keeps_weights_and_loss_state(batch) -> None:
    model = tiny_cascade(DropLoss(activation=Gumbel(), num_classes=K, stats=stats(), seed=3))
    sum(train_losses(model, batch).values()).backward()  # advances every stage's random stream
    state = model.state_dict()
    assert [state[f"roi_heads.cls_loss.{s}._extra_state"]["draws"] for s in range(3)] == [1, 1, 1]
    other = tiny_cascade(DropLoss(activation=Gumbel(), num_classes=K, stats=stats(), seed=9), seed=7)
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
    model = tiny_cascade(
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
    assert norms and all(type(m) is nn.BatchNorm2d for m in norms)  # from scratch: no statistics to freeze
    del model, heads
    gc.collect()


def test_the_cascade_refuses_the_mask_rcnn_box_loss() -> None:
    with pytest.raises(ValueError, match="box_loss=l1 is a Mask R-CNN option"):
        tiny_cascade(CrossEntropyLoss(activation=Gumbel(), num_classes=K), box_loss="l1")


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
    for stage in range(3):  # one mask head per stage: RoIAlign 14, 4 convs of 256, deconv, K + 1 logits
        assert len(heads.mask_head[stage]) == 4 and heads.mask_head[stage][0][0].out_channels == 256
        assert heads.mask_predictor[stage].mask_fcn_logits.out_channels == K + 1
    assert heads.mask_roi_pool.output_size == (14, 14)
    assert all(p.requires_grad for p in model.parameters())  # no weights: every parameter trains

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


def test_cascade_config_defaults_are_the_official_ones() -> None:
    cfg = compose_detector("cascade_r101_fpn", "detector.box_nms_thresh=0.3")
    factory = instantiate(cfg, _convert_="all")
    assert factory.func is build_cascade_r101_fpn
    assert factory.keywords["stage_iou_thresholds"] == [0.5, 0.6, 0.7]
    assert factory.keywords["stage_loss_weights"] == [1.0, 0.5, 0.25]
    assert factory.keywords["stage_box_weights"] == [[10, 10, 5, 5], [20, 20, 10, 10], [30, 30, 15, 15]]
    assert (factory.keywords["box_score_thresh"], factory.keywords["box_detections_per_img"]) == (1e-4, 300)


def test_every_stage_passes_the_rois_of_each_image_to_its_loss(batch) -> None:
    calls: list[tuple[int, list[int]]] = []

    class Recording(CrossEntropyLoss):
        def forward(self, logits: Tensor, labels: Tensor, *, rois_per_image=None) -> Tensor:
            calls.append((logits.shape[0], list(rois_per_image)))
            return super().forward(logits, labels, rois_per_image=rois_per_image)

    model = tiny_cascade(Recording(activation=Softmax(), num_classes=K))
    images, targets = batch(images=3, num_classes=K)
    torch.manual_seed(1)
    model.train()(images, targets)
    assert len(calls) == 3  # one per stage
    assert all(len(rois) == 3 and sum(rois) == rows for rows, rois in calls)
