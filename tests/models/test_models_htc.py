"""Hybrid Task Cascade: interleaved execution, the mask information flow, the test-time ensemble, training and
resume, the R101 builder and its config."""

from __future__ import annotations

import copy
import gc
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from cascade_support import LOSSES, K, compose_detector, disagreeing_stages, fpn_features, tiny_cascade, train_losses
from hydra.utils import instantiate
from torch import Tensor, nn
from torchvision.ops import roi_align

from gol import checkpoint
from gol.models import (
    CascadeRoIHeads,
    HTCRoIHeads,
    WeightsMismatchError,
    build_cascade_r101_fpn,
    build_htc_r101_fpn,
)
from gol.models.htc import MASK_CHANNELS

CONF = Path(__file__).resolve().parents[2] / "conf"
HTC_LOSS_KEYS = {
    *(f"loss_{name}_stage{s}" for name in ("classifier", "box_reg", "mask") for s in range(3)),
    "loss_objectness",
    "loss_rpn_box_reg",
}
MASK_WIDTH = 16  # the tiny cascade's mask head width


def tiny_htc(cls_loss, **options):
    return tiny_cascade(cls_loss, heads=lambda **kw: HTCRoIHeads(mask_channels=MASK_WIDTH, **kw), **options)


def _proposals(g: torch.Generator, images: int, count: int = 60) -> list[Tensor]:
    boxes = []
    for _ in range(images):
        corner = torch.rand(count, 2, generator=g) * 60
        boxes.append(torch.cat([corner, corner + torch.rand(count, 2, generator=g) * 30 + 6], dim=1))
    return boxes


def _chain(heads: HTCRoIHeads, pooled: Tensor) -> list[Tensor]:
    """The information flow written out: f_0 = h_0(x), f_t = h_t(x + relu(conv_t(f_{t-1})))."""
    f0 = heads.mask_head[0](pooled)
    conv1, conv2 = heads.mask_flow[0][0], heads.mask_flow[1][0]
    f1 = heads.mask_head[1](pooled + F.relu(conv1(f0)))
    f2 = heads.mask_head[2](pooled + F.relu(conv2(f1)))
    return [f0, f1, f2]


@pytest.mark.parametrize("name", ["ce-sigmoid", "ce-softmax", "ce-gumbel", "droploss-gumbel", "seesaw-softmax"])
def test_train_step_gives_finite_per_stage_losses_and_gradients_everywhere(name: str, batch) -> None:
    cls_loss = LOSSES[name]()
    model = tiny_htc(cls_loss)
    heads = model.roi_heads
    assert isinstance(heads, HTCRoIHeads) and heads.interleaved and heads.num_stages == 3
    assert len(heads.mask_flow) == 2  # stage 0 has no flow input (with_conv_res=False)
    assert all(loss.activation is cls_loss.activation for loss in heads.cls_loss)  # one shared Activation
    losses = train_losses(model, batch)
    assert set(losses) == HTC_LOSS_KEYS
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for stage in range(3):
        assert heads.box_predictor[stage].cls_score.weight.grad is not None
        assert all(p.grad is not None for p in heads.mask_head[stage].parameters())
        assert heads.mask_predictor[stage].mask_fcn_logits.weight.grad is not None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads.mask_flow.parameters())


def test_the_flow_is_the_chain_of_heads_and_feeds_every_later_stage() -> None:
    heads = tiny_htc(LOSSES["ce-gumbel"]()).roi_heads.eval()
    g = torch.Generator().manual_seed(0)
    pooled = torch.randn(7, MASK_WIDTH, 14, 14, generator=g)
    with torch.no_grad():
        chain = _chain(heads, pooled)
        for stage in range(3):
            torch.testing.assert_close(heads.flow_features(stage, pooled), chain[stage])
        for mine, expected in zip(heads.stage_mask_features(pooled), chain):
            torch.testing.assert_close(mine, expected)
        logits_before = heads.mask_predictor[2](heads.flow_features(2, pooled))
        # Change stage 1's mask features (its last conv): stage 3's mask logits change, stage 1's input does not.
        heads.mask_head[1][-1][0].weight.add_(0.5)
        logits_after = heads.mask_predictor[2](heads.flow_features(2, pooled))
        torch.testing.assert_close(heads.flow_features(0, pooled), chain[0])
    assert (logits_after - logits_before).abs().max() > 1e-3
    # Cascade heads with the same modules: stage 3 ignores stage 1 (no flow).
    cascade = tiny_cascade(LOSSES["ce-gumbel"]()).roi_heads.eval()
    with torch.no_grad():
        before = cascade.stage_mask_features(pooled)[2]
        cascade.mask_head[1][-1][0].weight.add_(0.5)
        torch.testing.assert_close(cascade.stage_mask_features(pooled)[2], before)


def test_each_stage_mask_trains_on_its_own_refined_boxes_resampled_through_the_flow(batch) -> None:
    """Interleaving: stage s samples, its box branch refines the samples, the refined boxes are matched and sampled
    again at stage s's IoU, and stage s's mask loss is the flow chain's BCE on that second sample's positives."""
    heads = tiny_htc(LOSSES["ce-gumbel"]()).roi_heads.train()
    g = torch.Generator().manual_seed(1)
    disagreeing_stages(heads, g)
    _, targets = batch(num_classes=K)
    shapes = [(96, 96)] * len(targets)
    features = fpn_features(g, images=len(targets))
    sampled: list[tuple[int, list[Tensor], object]] = []
    select = heads.select_training_samples

    def recording(stage: int, proposals: list[Tensor], *args):
        sampled.append((stage, [p.clone() for p in proposals], select(stage, proposals, *args)))
        return sampled[-1][2]

    heads.select_training_samples = recording
    torch.manual_seed(3)
    losses = heads(features, _proposals(g, len(targets)), shapes, targets)[1]
    assert [stage for stage, _, _ in sampled] == [0, 0, 1, 1, 2, 2]  # a box sample, then a mask sample, per stage
    for stage, weight in enumerate((1.0, 0.5, 0.25)):
        (_, _, box_samples), (_, refined_in, mask_samples) = sampled[2 * stage], sampled[2 * stage + 1]
        with torch.no_grad():  # the refined boxes: the stage's own regression of its box samples, no ground truth
            pooled = heads.box_roi_pool(features, box_samples.proposals, shapes)
            _, deltas = heads.box_predictor[stage](heads.box_head[stage](pooled))
            refined = heads._refine(stage, deltas, box_samples.proposals, shapes)
        for image, (boxes, from_gt) in enumerate(zip(refined, box_samples.from_gt)):
            torch.testing.assert_close(refined_in[image], boxes[~from_gt])
            # The mask sample draws from those refined boxes plus the appended ground truth.
            drawn = mask_samples.proposals[image][~mask_samples.from_gt[image]]
            assert all((boxes[~from_gt] == box).all(dim=1).any() for box in drawn)
        if stage + 1 < 3:  # the next stage starts from the same refined boxes
            for a, b in zip(sampled[2 * stage + 2][1], refined_in):
                torch.testing.assert_close(a, b)
        boxes, labels, gt_masks = [], [], []
        for image_boxes, image_labels, matched, target in zip(
            mask_samples.proposals, mask_samples.labels, mask_samples.matched_idxs, targets
        ):
            positive = image_labels > 0
            boxes.append(image_boxes[positive])
            labels.append(image_labels[positive])
            gt_masks.append(target["masks"][matched[positive]])
        assert sum(len(b) for b in boxes) > 0
        with torch.no_grad():
            flow = _chain(heads, heads.mask_roi_pool(features, boxes, shapes))[stage]
            logits = heads.mask_predictor[stage](flow)
        all_labels = torch.cat(labels)
        logits = logits[torch.arange(len(all_labels)), all_labels]  # (P, 28, 28)
        crops = [
            roi_align(m[:, None].float(), torch.cat([torch.arange(len(b))[:, None].to(b), b], dim=1), (28, 28), 1.0)
            for m, b in zip(gt_masks, boxes)
        ]
        by_hand = F.binary_cross_entropy_with_logits(logits, torch.cat(crops)[:, 0])
        torch.testing.assert_close(losses[f"loss_mask_stage{stage}"].detach(), weight * by_hand)


def test_a_later_stage_mask_loss_trains_the_earlier_mask_heads_through_the_flow(batch) -> None:
    model = tiny_htc(LOSSES["ce-sigmoid"]())
    losses = train_losses(model, batch)
    losses["loss_mask_stage2"].backward()
    heads = model.roi_heads
    for stage in range(3):  # mmdet: the earlier heads run on stage 2's RoIs, undetached
        assert all(p.grad is not None for p in heads.mask_head[stage].parameters())
    assert all(p.grad is None for p in heads.mask_predictor[0].parameters())  # only stage 2's logits are used
    for stage in range(3):  # boxes are detached between stages: no box head is reached
        assert all(p.grad is None for p in heads.box_head[stage].parameters())


@pytest.mark.parametrize(
    ("name", "probability"),
    [
        ("ce-sigmoid", torch.sigmoid),
        ("ce-gumbel", lambda q: torch.exp(-torch.exp(-q))),
        ("ce-softmax", lambda q: torch.softmax(q, dim=1)),
    ],
)
def test_test_time_scores_are_the_cascade_ensemble_and_masks_the_mean_along_the_flow(name, probability) -> None:
    htc = tiny_htc(LOSSES[name]()).eval()
    heads = htc.roi_heads
    heads.score_thresh, heads.nms_thresh, heads.detections_per_img = 0.0, 1.0, 10_000
    g = torch.Generator().manual_seed(0)
    disagreeing_stages(heads, g)
    # The same box stages in Cascade heads: the box scores and boxes of HTC are Cascade's.
    cascade = tiny_cascade(LOSSES[name]()).eval()
    cascade.load_state_dict({k: v for k, v in htc.state_dict().items() if "mask_flow" not in k})
    cascade.roi_heads.score_thresh, cascade.roi_heads.nms_thresh, cascade.roi_heads.detections_per_img = (
        0.0,
        1.0,
        10_000,
    )
    shapes = [(96, 96)]
    features = fpn_features(g)
    proposals = _proposals(g, 1, count=30)
    with torch.no_grad():
        (result,), _ = heads(features, proposals, shapes)
        (reference,), _ = cascade.roi_heads(features, proposals, shapes)
        pooled = heads.mask_roi_pool(features, [result["boxes"]], shapes)
        rows = torch.arange(len(result["labels"]))
        stage_masks = torch.stack(
            [heads.mask_predictor[s](f)[rows, result["labels"]].sigmoid() for s, f in enumerate(_chain(heads, pooled))]
        )  # (S, N, 28, 28)
    for key in ("boxes", "labels", "scores"):
        torch.testing.assert_close(result[key], reference[key])
    assert (stage_masks[0] - stage_masks[2]).abs().max() > 1e-3  # the stages' masks disagree
    torch.testing.assert_close(result["masks"][:, 0], stage_masks.mean(dim=0))
    assert (result["masks"] - reference["masks"]).abs().max() > 1e-4  # the flow changes the masks


@pytest.mark.parametrize("name", ["ce-sigmoid", "ce-softmax", "ce-gumbel"])
def test_a_short_training_run_lowers_the_loss(name: str, batch) -> None:
    model = tiny_htc(LOSSES[name]()).train()
    images, targets = batch(num_classes=K)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    totals = []
    for step in range(8):
        torch.manual_seed(step)
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        totals.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(totals)))
    assert sum(totals[-3:]) / 3 < 0.8 * sum(totals[:3]) / 3, totals


def _train(model: nn.Module, optimizer, scheduler, batch, steps: int) -> None:
    images, targets = batch
    for _ in range(steps):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()


def _objects(model: nn.Module):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    return optimizer, scheduler, torch.amp.GradScaler("cpu", enabled=False)


def test_checkpoint_resume_is_exact(batch) -> None:
    """gol.checkpoint's capture/restore: 2 + 2 steps after a resume equal 4 uninterrupted steps, bit for bit
    (random RoI sampling, the DropLoss streams of every stage and the flow convolutions included)."""
    data = batch(num_classes=K)
    model = tiny_htc(LOSSES["droploss-gumbel"]()).train()
    optimizer, scheduler, scaler = _objects(model)
    torch.manual_seed(11)
    _train(model, optimizer, scheduler, data, 2)
    state = copy.deepcopy(
        checkpoint.capture(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                           sampler={"epoch": 0, "position": 2}, iteration=2, skipped_steps=0)
    )  # fmt: skip
    _train(model, optimizer, scheduler, data, 2)
    resumed = tiny_htc(LOSSES["droploss-gumbel"](), seed=5).train()
    r_optimizer, r_scheduler, r_scaler = _objects(resumed)
    checkpoint.restore(state, model=resumed, optimizer=r_optimizer, scheduler=r_scheduler, scaler=r_scaler)
    _train(resumed, r_optimizer, r_scheduler, data, 2)
    expected = model.state_dict()
    assert any("mask_flow" in key for key in expected)
    for key, value in resumed.state_dict().items():
        if isinstance(value, Tensor):
            assert torch.equal(value, expected[key]), key
        else:
            assert value == expected[key], key


def test_htc_config_has_cascade_r101_options_and_builds_htc() -> None:
    htc, cascade = compose_detector("htc_r101_fpn"), compose_detector("cascade_r101_fpn")
    assert htc._target_ == "gol.models.build_htc_r101_fpn"
    assert {k: v for k, v in htc.items() if k != "_target_"} == {k: v for k, v in cascade.items() if k != "_target_"}
    factory = instantiate(htc, _convert_="all")
    assert factory.func is build_htc_r101_fpn
    with pytest.raises(TypeError, match="stage_count"):  # the cascade's signature, the cascade's error
        build_htc_r101_fpn(num_classes=K, cls_loss=LOSSES["ce-gumbel"](), train_sizes=(64,), test_size=64,
                           max_size=96, stage_count=3)  # fmt: skip


def test_build_htc_r101_fpn_is_cascade_r101_plus_the_flow_and_its_weights_file(batch, tmp_path: Path) -> None:
    sizes = {"train_sizes": (64,), "test_size": 64, "max_size": 96}
    quick = {"rpn_post_nms_top_n_train": 100, "rpn_post_nms_top_n_test": 50, "box_batch_size_per_image": 64,
             "box_detections_per_img": 10}  # fmt: skip
    torch.manual_seed(0)
    model = build_htc_r101_fpn(num_classes=K, cls_loss=LOSSES["ce-gumbel"](), **sizes, **quick)
    heads = model.roi_heads
    assert isinstance(heads, HTCRoIHeads)
    assert [m.high_threshold for m in heads.proposal_matchers] == [0.5, 0.6, 0.7]
    assert heads.loss_weights == (1.0, 0.5, 0.25)
    htc_parameters = {k: v.numel() for k, v in model.named_parameters()}
    cascade = build_cascade_r101_fpn(num_classes=K, cls_loss=LOSSES["ce-gumbel"](), **sizes, **quick)
    assert isinstance(cascade.roi_heads, CascadeRoIHeads) and not isinstance(cascade.roi_heads, HTCRoIHeads)
    cascade_parameters = {k: v.numel() for k, v in cascade.named_parameters()}
    del cascade
    gc.collect()
    flow = {k: n for k, n in htc_parameters.items() if k not in cascade_parameters}
    assert flow == {f"roi_heads.mask_flow.{i}.0.{kind}": n for i in range(2)
                    for kind, n in (("weight", MASK_CHANNELS**2), ("bias", MASK_CHANNELS))}  # fmt: skip
    assert {k: n for k, n in htc_parameters.items() if k in cascade_parameters} == cascade_parameters

    images, targets = batch(num_classes=K, images=1, height=64, width=64)
    losses = model.train()(images, targets)
    assert set(losses) == HTC_LOSS_KEYS and all(torch.isfinite(v) for v in losses.values())
    with torch.no_grad():
        (output,) = model.eval()(images)
    assert output["masks"].shape[1:] == (1, 64, 64)

    path = tmp_path / "htc.pth"
    torch.save(model.state_dict(), path)
    expected = {k: v for k, v in model.state_dict().items() if isinstance(v, Tensor)}
    del model, heads, losses
    gc.collect()
    loaded = build_htc_r101_fpn(num_classes=K, cls_loss=LOSSES["ce-gumbel"](), **sizes, weights=str(path))
    for key, value in loaded.state_dict().items():
        if key in expected and not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(value, expected[key], msg=key)
    del loaded
    gc.collect()
    # A Cascade file lacks the flow: refused, naming the architecture it was asked for.
    cascade_file = tmp_path / "cascade.pth"
    cascade_state = {k: v for k, v in expected.items() if "mask_flow" not in k}
    torch.save(cascade_state, cascade_file)
    with pytest.raises(WeightsMismatchError, match="Hybrid Task Cascade ResNet-101 FPN"):
        build_htc_r101_fpn(num_classes=K, cls_loss=LOSSES["ce-gumbel"](), **sizes, weights=str(cascade_file))
    gc.collect()
