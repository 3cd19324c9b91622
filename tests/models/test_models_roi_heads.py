"""GolRoIHeads: the loss/score seam against torchvision's stock RoIHeads."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss

from gol.activations import Gumbel, Sigmoid, Softmax
from gol.config.detector import BoxLoss
from gol.data.stats import CategoryStats
from gol.losses import CrossEntropyLoss, EQLLoss
from gol.models import GolRoIHeads, build_tiny
from gol.models.roi_heads import box_regression_loss

K = 5


def _tiny(cls_loss: torch.nn.Module, **options: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_tiny(num_classes=K, cls_loss=cls_loss, train_sizes=(96,), test_size=96, max_size=96, **options)


def _stock_heads(heads: GolRoIHeads) -> RoIHeads:
    """torchvision's RoIHeads over the very same submodules and settings."""
    return RoIHeads(
        heads.box_roi_pool,
        heads.box_head,
        heads.box_predictor,
        heads.proposal_matcher.high_threshold,
        heads.proposal_matcher.low_threshold,
        heads.fg_bg_sampler.batch_size_per_image,
        heads.fg_bg_sampler.positive_fraction,
        heads.box_coder.weights,
        heads.score_thresh,
        heads.nms_thresh,
        heads.detections_per_img,
        mask_roi_pool=heads.mask_roi_pool,
        mask_head=heads.mask_head,
        mask_predictor=heads.mask_predictor,
    )


def _losses_and_grads(model: torch.nn.Module, images: list[Tensor], targets: list[dict[str, Tensor]]):
    model.train()
    torch.manual_seed(1)  # same anchors/RoIs sampled by both models
    losses = model(images, targets)
    sum(losses.values()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


def test_softmax_seam_equals_torchvision_loss_value_and_gradient(batch) -> None:
    ours = _tiny(CrossEntropyLoss(activation=Softmax(), num_classes=K)).double()
    stock = copy.deepcopy(ours)
    stock.roi_heads = _stock_heads(stock.roi_heads)
    images, targets = batch(num_classes=K, dtype=torch.float64)

    our_losses, our_grads = _losses_and_grads(ours, images, targets)
    stock_losses, stock_grads = _losses_and_grads(stock, images, targets)

    assert our_losses.keys() == stock_losses.keys() >= {"loss_classifier", "loss_box_reg", "loss_mask"}
    for key in our_losses:
        torch.testing.assert_close(our_losses[key], stock_losses[key], rtol=1e-10, atol=1e-12)
    assert our_grads.keys() == stock_grads.keys()
    assert "roi_heads.box_predictor.cls_score.weight" in our_grads
    for name in our_grads:
        torch.testing.assert_close(our_grads[name], stock_grads[name], rtol=1e-8, atol=1e-10, msg=name)


def test_box_regression_loss_is_torchvisions_box_term() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, K + 1, (40,), generator=g)
    logits = torch.randn(40, K + 1, generator=g)
    deltas = torch.randn(40, (K + 1) * 4, generator=g)
    targets = torch.randn(40, 4, generator=g)
    _, expected = fastrcnn_loss(logits, deltas, [labels[:25], labels[25:]], [targets[:25], targets[25:]])
    torch.testing.assert_close(box_regression_loss(deltas, labels, targets), expected)


def _mmdet_l1_box_loss(box_regression: Tensor, labels: Tensor, regression_targets: Tensor) -> Tensor:
    """mmdet 2.21 ``BBoxHead.loss`` with ``L1Loss(loss_weight=1.0)``, in mmdet's own conventions: foreground labels
    0..K-1 and background K, class-specific deltas (R, K * 4) without a background slot, box weights 1 on the
    positives, ``weight_reduce_loss(reduction='mean', avg_factor=bbox_targets.size(0))``."""
    num_classes = box_regression.shape[1] // 4 - 1
    mmdet_labels = torch.where(labels > 0, labels - 1, torch.full_like(labels, num_classes))
    mmdet_pred = box_regression[:, 4:]  # (R, K * 4): drop torchvision's background slot
    bbox_weights = torch.zeros_like(regression_targets)
    pos_inds = (mmdet_labels >= 0) & (mmdet_labels < num_classes)
    bbox_weights[pos_inds] = 1.0
    if not pos_inds.any():
        return mmdet_pred[pos_inds].sum()
    pos_pred = mmdet_pred.view(mmdet_pred.size(0), -1, 4)[pos_inds, mmdet_labels[pos_inds]]
    elementwise = torch.abs(pos_pred - regression_targets[pos_inds]) * bbox_weights[pos_inds]
    return elementwise.sum() / regression_targets.size(0)


@settings(max_examples=30, deadline=None)
@given(
    rois=st.integers(1, 40),
    classes=st.integers(1, 6),
    positive_fraction=st.sampled_from([0.0, 0.25, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_l1_box_loss_is_mmdets_bbox_loss(rois: int, classes: int, positive_fraction: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    positive = torch.rand(rois, generator=g, dtype=torch.float64) < positive_fraction
    labels = torch.where(positive, torch.randint(1, classes + 1, (rois,), generator=g), 0)
    deltas = torch.randn(rois, (classes + 1) * 4, generator=g, dtype=torch.float64)
    targets = torch.randn(rois, 4, generator=g, dtype=torch.float64)
    ours = box_regression_loss(deltas, labels, targets, box_loss=BoxLoss.l1)
    torch.testing.assert_close(ours, _mmdet_l1_box_loss(deltas, labels, targets), rtol=1e-12, atol=1e-12)
    assert ours.dtype == torch.float64


def test_l1_box_loss_gradcheck() -> None:
    g = torch.Generator().manual_seed(3)
    labels = torch.tensor([0, 2, 1, 0, 3, 3, 0])
    deltas = torch.randn(7, 4 * 4, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda d, t: box_regression_loss(d, labels, t, box_loss="l1"), (deltas, targets))
    # Only the positives' own class slots get a gradient, sign(d - t) / R.
    box_regression_loss(deltas, labels, targets, box_loss=BoxLoss.l1).backward()
    grad = deltas.grad.view(7, 4, 4)
    positive = labels > 0
    expected = torch.zeros_like(grad)
    rows = torch.where(positive)[0]
    expected[rows, labels[rows]] = torch.sign(deltas.detach().view(7, 4, 4)[rows, labels[rows]] - targets[rows]) / 7
    torch.testing.assert_close(grad, expected)


def test_box_loss_option_reaches_the_heads(batch) -> None:
    cls_loss = CrossEntropyLoss(activation=Softmax(), num_classes=K)
    assert _tiny(cls_loss).roi_heads.box_loss is BoxLoss.smooth_l1
    model = _tiny(cls_loss, box_loss="l1")
    assert model.roi_heads.box_loss is BoxLoss.l1
    images, targets = batch(num_classes=K)
    losses = model.train()(images, targets)
    assert torch.isfinite(losses["loss_box_reg"]) and losses["loss_box_reg"] > 0
    with pytest.raises(ValueError, match="detector.box_loss must be one of 'smooth_l1', 'l1', got 'l2'"):
        _tiny(cls_loss, box_loss="l2")


def _head_inputs(num_logits: int, seed: int = 0) -> tuple[Tensor, Tensor, list[Tensor], list[tuple[int, int]]]:
    """Logits, deltas and well-separated 20 px proposals for two 96 x 96 images (30 and 20 RoIs)."""
    g = torch.Generator().manual_seed(seed)
    proposals = []
    for count in (30, 20):
        corner = torch.rand(count, 2, generator=g) * 70
        proposals.append(torch.cat([corner, corner + 20], dim=1))
    rois = sum(p.shape[0] for p in proposals)
    logits = torch.randn(rois, num_logits, generator=g)  # Gumbel scores stay > 0 in float32
    deltas = torch.randn(rois, (K + 1) * 4, generator=g) * 0.1
    return logits, deltas, proposals, [(96, 96), (96, 96)]


def test_softmax_postprocess_equals_torchvision() -> None:
    heads = _tiny(CrossEntropyLoss(activation=Softmax(), num_classes=K)).roi_heads.eval()
    logits, deltas, proposals, shapes = _head_inputs(K + 1)
    ours = heads.postprocess_detections(logits, deltas, proposals, shapes)
    stock = RoIHeads.postprocess_detections(heads, logits, deltas, proposals, shapes)
    for our_field, stock_field in zip(ours, stock):
        for a, b in zip(our_field, stock_field):
            torch.testing.assert_close(a, b)
    assert sum(len(b) for b in ours[0]) > 0


def _stats() -> CategoryStats:
    return CategoryStats(
        category_ids=tuple(range(1, K + 1)),
        names=tuple(f"c{i}" for i in range(K)),
        image_count=torch.tensor([200, 120, 40, 8, 2]),
        instance_count=torch.tensor([400, 200, 50, 9, 2]),
        frequency=("f", "f", "c", "r", "r"),
        num_images=300,
    )


@pytest.mark.parametrize(
    ("loss", "probability"),
    [
        (lambda: CrossEntropyLoss(activation=Sigmoid(), num_classes=K), torch.sigmoid),
        (lambda: CrossEntropyLoss(activation=Gumbel(), num_classes=K), lambda q: torch.exp(-torch.exp(-q))),
        (lambda: EQLLoss(activation=Sigmoid(), num_classes=K, stats=_stats()), torch.sigmoid),
    ],
    ids=["ce-sigmoid", "ce-gumbel", "eql-sigmoid"],
)
def test_postprocess_scores_are_the_activation_of_foreground_columns(loss, probability) -> None:
    cls_loss = loss()
    heads = _tiny(cls_loss, box_score_thresh=0.0, box_nms_thresh=1.0, box_detections_per_img=10_000).roi_heads
    logits, deltas, proposals, shapes = _head_inputs(cls_loss.num_logits)
    _boxes, scores, labels = heads.eval().postprocess_detections(logits, deltas, proposals, shapes)

    foreground = probability(logits[:, cls_loss.num_logits - K :])  # (R, K), column k is label k + 1
    per_image = foreground.split([p.shape[0] for p in proposals])
    for image_scores, image_labels, expected in zip(scores, labels, per_image):
        assert len(image_scores) == expected.numel()  # nothing filtered: every (RoI, class) is a candidate
        torch.testing.assert_close(image_scores.sort().values, expected.flatten().sort().values)
        for label in range(1, K + 1):
            torch.testing.assert_close(
                image_scores[image_labels == label].sort().values, expected[:, label - 1].sort().values
            )


@pytest.mark.parametrize("with_stats", [False, True], ids=["ce-gumbel", "eql-sigmoid"])
def test_loss_module_is_part_of_the_model_state(with_stats: bool, batch) -> None:
    cls_loss = (
        EQLLoss(activation=Sigmoid(), num_classes=K, stats=_stats())
        if with_stats
        else CrossEntropyLoss(activation=Gumbel(), num_classes=K)
    )
    model = _tiny(cls_loss)
    assert dict(model.named_modules())["roi_heads.cls_loss"] is cls_loss
    state = model.state_dict()
    for name in cls_loss.state_dict():
        assert f"roi_heads.cls_loss.{name}" in state
    assert model.roi_heads.box_predictor.cls_score.out_features == cls_loss.num_logits

    images, targets = batch(num_classes=K)
    losses = model.train()(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.roi_heads.box_predictor.cls_score.weight.grad is not None


class _Recording(CrossEntropyLoss):
    """Softmax CE that records what the heads pass: (rows, rois_per_image) per call."""

    def __init__(self) -> None:
        super().__init__(activation=Softmax(), num_classes=K)
        self.calls: list[tuple[int, list[int] | None]] = []

    def forward(self, logits: Tensor, labels: Tensor, *, rois_per_image=None) -> Tensor:
        self.calls.append((logits.shape[0], None if rois_per_image is None else list(rois_per_image)))
        return super().forward(logits, labels, rois_per_image=rois_per_image)


def test_heads_pass_the_rois_of_each_image_to_the_loss(batch) -> None:
    loss = _Recording()
    model = _tiny(loss).train()
    images, targets = batch(images=3, num_classes=K)
    model(images, targets)
    [(rows, rois)] = loss.calls
    heads = model.roi_heads
    assert isinstance(heads, GolRoIHeads)
    per_image = heads.fg_bg_sampler.batch_size_per_image
    assert rois is not None and len(rois) == 3 and sum(rois) == rows
    assert all(0 < n <= per_image for n in rois)
