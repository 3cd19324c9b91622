"""torchvision's RoI heads with the classification loss and the test-time scores behind one seam.

Shape shorthand:
    R  sampled RoIs (training) or proposals (test), all images of the batch concatenated
    K  foreground classes; labels are 1..K and 0 is background (torchvision's convention)
    L  ``cls_loss.num_logits``, the classifier width (K + 1 with background at column 0, K, or K + 2)
    N  detections of one image after post-processing
Box deltas are class-specific, (R, (K + 1) * 4) with the background slot at index 0, as in torchvision.

``GolRoIHeads`` differs from torchvision's ``RoIHeads`` in three places: the classification term of the
Fast R-CNN loss is ``cls_loss(class_logits, labels, rois_per_image=...)`` (torchvision hard-codes
``F.cross_entropy``; the RoI counts per image let the stochastic losses group RoIs by image), and
``postprocess_detections`` scores with ``cls_loss.scores(class_logits)`` (torchvision hard-codes a softmax, which
would silently score sigmoid or Gumbel heads with the wrong activation). One ``cls_loss`` object, and so one
activation, serves both. The loss is a submodule, so its buffers and extra state are in the model's state_dict.
The third is the box term: ``box_loss="smooth_l1"`` is torchvision's, ``"l1"`` mmdet's ``L1Loss`` (the ResNet
detectors' default; ``box_regression_loss``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_loss
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops import boxes as box_ops

from gol.config.detector import BoxLoss
from gol.models.nms import batched_nms
from gol.models.predictors import mask_probabilities

if TYPE_CHECKING:
    from gol.losses.base import ClassificationLoss

# torchvision fastrcnn_loss: smooth-L1 on class-specific deltas of positive RoIs, beta 1/9.
BOX_SMOOTH_L1_BETA = 1.0 / 9.0
# torchvision postprocess_detections: boxes narrower or lower than this (pixels) are dropped before NMS.
MIN_BOX_SIZE = 1e-2


def box_regression_loss(
    box_regression: Tensor, labels: Tensor, regression_targets: Tensor, *, box_loss: BoxLoss = BoxLoss.smooth_l1
) -> Tensor:
    """The box term of the Fast R-CNN loss: torchvision's ``fastrcnn_loss`` term, or mmdet's L1 one.

    Both regress the class-specific deltas of the positive RoIs towards their own class slot and divide the sum
    over RoIs and coordinates by R, the number of sampled RoIs of the batch (positives and negatives). mmdet 2.21
    ``BBoxHead.loss`` (``mmdet/models/roi_heads/bbox_heads/bbox_head.py``) does the same with the L1 loss: the
    positives' deltas with box weight 1, ``avg_factor=bbox_targets.size(0)`` (R), and mmdet's
    ``weight_reduce_loss`` (``mmdet/models/losses/utils.py``) divides the sum by ``avg_factor``; without positives
    the term is 0. The targets are encoded with weights (10, 10, 5, 5), mmdet's target stds (0.1, 0.1, 0.2, 0.2).

    Args:
        box_regression: (R, (K + 1) * 4) float, class-specific deltas, background slot at index 0.
        labels: (R,) int64 in [0, K]; only RoIs with a label > 0 are regressed, towards their own class slot.
        regression_targets: (R, 4) float, encoded targets of the matched ground-truth boxes.
        box_loss: ``smooth_l1`` (torchvision, beta 1/9) or ``l1`` (mmdet ``L1Loss``).

    Returns:
        Scalar: the elementwise loss summed over positive RoIs and coordinates, divided by R.
    """
    positive = torch.where(labels > 0)[0]
    deltas = box_regression.reshape(box_regression.shape[0], -1, 4)  # (R, K + 1, 4)
    predicted = deltas[positive, labels[positive]]  # (P, 4)
    target = regression_targets[positive]  # (P, 4)
    if BoxLoss(box_loss) is BoxLoss.l1:
        loss = F.l1_loss(predicted, target, reduction="sum")
    else:
        loss = F.smooth_l1_loss(predicted, target, beta=BOX_SMOOTH_L1_BETA, reduction="sum")
    return loss / labels.numel()


def select_detections(
    boxes: Tensor, scores: Tensor, *, score_thresh: float, nms_thresh: float, detections_per_img: int
) -> tuple[Tensor, Tensor, Tensor]:
    """torchvision's per-image test-time filtering of (RoI, class) candidates.

    Args:
        boxes: (R_i, K, 4) float, one box per RoI and foreground class, already clipped to the image.
        scores: (R_i, K) float, foreground scores; column k is label k + 1.
        score_thresh, nms_thresh, detections_per_img: keep ``score > score_thresh``, drop boxes under 0.01 px,
            NMS per class at ``nms_thresh``, keep the best ``detections_per_img``.

    Returns:
        boxes (N, 4), scores (N,) and labels (N,) int64 in 1..K, best first.
    """
    labels = torch.arange(1, scores.shape[1] + 1, device=scores.device)  # (K,)
    labels = labels.view(1, -1).expand_as(scores).reshape(-1)  # (R_i * K,)
    boxes = boxes.reshape(-1, 4)  # (R_i * K, 4)
    scores = scores.reshape(-1)  # (R_i * K,)

    keep = torch.where(scores > score_thresh)[0]
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = box_ops.remove_small_boxes(boxes, min_size=MIN_BOX_SIZE)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, nms_thresh)[:detections_per_img]
    return boxes[keep], scores[keep], labels[keep]


def check_training_targets(targets: list[dict[str, Tensor]] | None, *, owner: str) -> list[dict[str, Tensor]]:
    """The training targets, checked as torchvision does: present, float ``boxes``, int64 ``labels``."""
    if targets is None:
        raise ValueError(f"{owner} needs targets in training mode")
    for t in targets:
        if not t["boxes"].is_floating_point():
            raise TypeError(f"target boxes must be floating point, got {t['boxes'].dtype}")
        if t["labels"].dtype != torch.int64:
            raise TypeError(f"target labels must be int64, got {t['labels'].dtype}")
    return targets


class GolRoIHeads(RoIHeads):
    """Box and mask heads of Mask R-CNN whose classification goes through ``cls_loss``.

    Args (keyword-only; all but ``cls_loss`` are torchvision's ``RoIHeads`` arguments):
        cls_loss: the classification loss (``gol.losses.ClassificationLoss``); also gives the test-time scores.
        box_roi_pool, box_head, box_predictor: RoIAlign, feature head and ``GolBoxPredictor``.
        fg_iou_thresh, bg_iou_thresh, batch_size_per_image, positive_fraction, bbox_reg_weights: RoI sampling
            and box coding, as torchvision.
        box_loss: the box-regression term (``box_regression_loss``).
        score_thresh, nms_thresh, detections_per_img: test-time filtering (LVIS: 1e-4, 0.5 or 0.3, 300).
        mask_roi_pool, mask_head, mask_predictor: the mask branch (class-specific over K + 1 slots).
    """

    def __init__(
        self,
        *,
        cls_loss: ClassificationLoss,
        box_roi_pool: MultiScaleRoIAlign,
        box_head: nn.Module,
        box_predictor: nn.Module,
        fg_iou_thresh: float,
        bg_iou_thresh: float,
        batch_size_per_image: int,
        positive_fraction: float,
        bbox_reg_weights: tuple[float, float, float, float] | None,
        box_loss: BoxLoss,
        score_thresh: float,
        nms_thresh: float,
        detections_per_img: int,
        mask_roi_pool: MultiScaleRoIAlign,
        mask_head: nn.Module,
        mask_predictor: nn.Module,
    ) -> None:
        super().__init__(
            box_roi_pool,
            box_head,
            box_predictor,
            fg_iou_thresh,
            bg_iou_thresh,
            batch_size_per_image,
            positive_fraction,
            bbox_reg_weights,
            score_thresh,
            nms_thresh,
            detections_per_img,
            mask_roi_pool=mask_roi_pool,
            mask_head=mask_head,
            mask_predictor=mask_predictor,
        )
        self.cls_loss = cls_loss
        self.box_loss = BoxLoss(box_loss)

    def postprocess_detections(
        self,
        class_logits: Tensor,
        box_regression: Tensor,
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per image: boxes (N, 4), scores (N,) and labels (N,) in 1..K, best first.

        Scores are ``cls_loss.scores(class_logits)`` (R, K); the rest is torchvision's procedure: one candidate per
        (proposal, class) with its class-specific box, ``score > score_thresh``, drop boxes under 0.01 px, NMS per
        class at ``nms_thresh``, keep ``detections_per_img``.
        """
        num_slots = box_regression.shape[-1] // 4  # K + 1
        scores = self.cls_loss.scores(class_logits)  # (R, K)
        if scores.shape != (class_logits.shape[0], num_slots - 1):
            raise ValueError(
                f"cls_loss.scores returned shape {tuple(scores.shape)}, expected ({class_logits.shape[0]}, "
                f"{num_slots - 1}): the loss and the box predictor disagree on the number of classes"
            )
        boxes_per_image = [p.shape[0] for p in proposals]
        pred_boxes = self.box_coder.decode(box_regression, proposals)  # (R, K + 1, 4)

        out_boxes, out_scores, out_labels = [], [], []
        for boxes, image_scores, image_shape in zip(
            pred_boxes.split(boxes_per_image), scores.split(boxes_per_image), image_shapes
        ):
            boxes = box_ops.clip_boxes_to_image(boxes, image_shape)[:, 1:]  # (R_i, K, 4), background dropped
            boxes, image_scores, labels = select_detections(
                boxes,
                image_scores,
                score_thresh=self.score_thresh,
                nms_thresh=self.nms_thresh,
                detections_per_img=self.detections_per_img,
            )
            out_boxes.append(boxes)
            out_scores.append(image_scores)
            out_labels.append(labels)
        return out_boxes, out_scores, out_labels

    def forward(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """torchvision's ``RoIHeads.forward`` for boxes and masks, with the classification term from ``cls_loss``.

        Training returns ``([], {"loss_classifier", "loss_box_reg", "loss_mask"})``; evaluation returns one dict
        per image with ``boxes`` (N, 4), ``labels`` (N,), ``scores`` (N,) and ``masks`` (N, 1, 28, 28) and no losses.
        """
        if self.training:
            targets = check_training_targets(targets, owner=type(self).__name__)
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)

        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)  # (R, L), (R, (K + 1) * 4)

        if not self.training:
            boxes, scores, det_labels = self.postprocess_detections(
                class_logits, box_regression, proposals, image_shapes
            )
            result = [{"boxes": b, "labels": lab, "scores": s} for b, s, lab in zip(boxes, scores, det_labels)]
            add_masks(mask_branch(self), features, result, image_shapes)
            return result, {}

        all_labels = torch.cat(labels)  # (R,)
        losses = {
            "loss_classifier": self.cls_loss(class_logits, all_labels, rois_per_image=[len(lab) for lab in labels]),
            "loss_box_reg": box_regression_loss(
                box_regression, all_labels, torch.cat(regression_targets), box_loss=self.box_loss
            ),
        }
        assert targets is not None  # training: select_training_samples has used them
        losses["loss_mask"] = mask_loss(
            mask_branch(self), features, proposals, matched_idxs, labels, targets, image_shapes
        )
        return [], losses


class MaskBranch(NamedTuple):
    """One mask branch: its RoIAlign, conv head and predictor (class-specific logits over K + 1 slots).

    ``head`` maps pooled RoI features (M, C, 14, 14) to mask features (M, D, 14, 14): a module, or, in a Hybrid
    Task Cascade, a stage's heads chained by the mask information flow (``gol.models.htc_heads``).
    """

    roi_pool: nn.Module
    head: Callable[[Tensor], Tensor]
    predictor: nn.Module


def mask_branch(heads: nn.Module) -> MaskBranch:
    """``heads``' mask branch (its ``mask_roi_pool``, ``mask_head`` and ``mask_predictor``)."""
    parts = tuple(getattr(heads, name) for name in ("mask_roi_pool", "mask_head", "mask_predictor"))
    if not all(isinstance(part, nn.Module) for part in parts):
        raise TypeError(f"{type(heads).__name__} has no mask branch (mask_roi_pool, mask_head, mask_predictor)")
    return MaskBranch(*parts)


def mask_loss(
    branch: MaskBranch,
    features: dict[str, Tensor],
    proposals: list[Tensor],
    matched_idxs: list[Tensor],
    labels: list[Tensor],
    targets: list[dict[str, Tensor]],
    image_shapes: list[tuple[int, int]],
) -> Tensor:
    """torchvision's ``loss_mask`` of one mask branch, trained on the positive sampled RoIs only, as torchvision
    does. Per image: proposals (R_i, 4), their matched ground-truth indices and labels (R_i,)."""
    positives = [torch.where(image_labels > 0)[0] for image_labels in labels]
    mask_proposals = [p[pos] for p, pos in zip(proposals, positives)]
    pos_matched_idxs = [m[pos] for m, pos in zip(matched_idxs, positives)]
    mask_features = branch.head(branch.roi_pool(features, mask_proposals, image_shapes))
    return maskrcnn_loss(
        branch.predictor(mask_features),
        mask_proposals,
        [t["masks"] for t in targets],
        [t["labels"] for t in targets],
        pos_matched_idxs,
    )


def add_masks(
    branch: MaskBranch,
    features: dict[str, Tensor],
    results: list[dict[str, Tensor]],
    image_shapes: list[tuple[int, int]],
) -> None:
    """Test time: put ``masks`` (N, 1, 28, 28), the probabilities of each detection's class, into every result
    dict (which holds ``boxes`` and ``labels``), through one mask branch."""
    mask_features = branch.head(branch.roi_pool(features, [r["boxes"] for r in results], image_shapes))
    labels = [r["labels"] for r in results]
    for mask_prob, r in zip(mask_probabilities(branch.predictor, mask_features, labels), results):
        r["masks"] = mask_prob
