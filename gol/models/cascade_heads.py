"""Cascade R-CNN RoI heads (Cai & Vasconcelos, CVPR 2018) with every stage's classification behind ``cls_loss``.

Shape shorthand:
    S  cascade stages (3: IoU thresholds 0.5, 0.6, 0.7)
    R  sampled RoIs (training) or proposals (test) of one stage, all images of the batch concatenated
    K  foreground classes; labels are 1..K and 0 is background (torchvision's convention)
    L  ``cls_loss.num_logits``, the classifier width (K + 1 with background at column 0, K, or K + 2)
    N  detections of one image after post-processing
Box deltas are class-agnostic, (R, 4), as in the official Cascade configs (``reg_class_agnostic=True``); mask logits
are class-specific over K + 1 slots, as in Mask R-CNN.

Every stage has a box branch and a mask branch, as mmdetection 2.x's ``CascadeRoIHead``
(``mmdet/models/roi_heads/cascade_roi_head.py``, v2.21, which the official GOL configs use):

Training, stage s: the proposals (RPN boxes for s = 0, else stage s - 1's refined boxes, detached) get the ground
truth appended, are matched at the stage's IoU threshold and sampled (512 per image, 25% positive), then the
stage's own box head, predictor and ``cls_loss[s]`` give ``loss_classifier_stage{s}`` and
``loss_box_reg_stage{s}`` (smooth-L1, beta 1, class-agnostic), and the stage's own mask head, on the positives of
the same samples, gives ``loss_mask_stage{s}``; all three are multiplied by the stage's loss weight (1, 0.5, 0.25),
as mmdet weights every ``s{s}.loss_*`` term. Every sampled RoI except the appended ground truth is then regressed
by stage s into stage s + 1's proposals.

Test (mmdet's ``simple_test``): stage 0's box branch runs on the proposals and stage s + 1's on stage s's boxes
regressed by stage s's deltas (mmdet picks the deltas of the arg-max foreground class; with class-agnostic
regression there is one set). The RAW class logits of every stage, each computed on its own stage's boxes, are
averaged, and only the average is activated, by the last stage's loss (``cls_loss[-1].scores``, as mmdet's
``bbox_head[-1].get_bboxes``); boxes are the last stage's deltas applied to the last stage's input boxes; then
torchvision's filtering (score threshold, per-class NMS, ``detections_per_img``). Every stage's mask head runs on
the kept detections and the per-stage sigmoid masks are averaged (mmdet's ``merge_aug_masks``).

Module names follow Mask R-CNN's with a stage index (``box_head.0``, ``box_predictor.0.cls_score``,
``mask_head.0``, ``mask_predictor.0.mask_fcn_logits``, ``cls_loss.0``), so ``gol.models.weights`` treats the
class-dependent layers and the loss state of a cascade exactly as it does a Mask R-CNN's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops import boxes as box_ops

from gol.models.predictors import mask_probabilities
from gol.models.roi_heads import MaskBranch, check_training_targets, mask_loss, select_detections

if TYPE_CHECKING:
    from gol.losses.base import ClassificationLoss
    from gol.models.predictors import GolBoxPredictor

# Official Cascade R-CNN configs: SmoothL1Loss(beta=1.0, loss_weight=1.0) on the normalised deltas of every stage.
CASCADE_SMOOTH_L1_BETA = 1.0
# A refined box thinner than this (pixels) cannot be encoded against (log of its width); it is not passed on to
# the next stage while training. Same floor as torchvision's RPN proposals.
MIN_REFINED_SIZE = 1e-3


def agnostic_box_loss(deltas: Tensor, labels: Tensor, regression_targets: Tensor) -> Tensor:
    """Smooth-L1 (beta 1) on the class-agnostic deltas of positive RoIs, summed, divided by all sampled RoIs.

    Args:
        deltas: (R, 4) float, predicted deltas.
        labels: (R,) int64 in [0, K]; only RoIs with a label > 0 are regressed.
        regression_targets: (R, 4) float, encoded targets of the matched ground-truth boxes.
    """
    positive = torch.where(labels > 0)[0]
    loss = F.smooth_l1_loss(
        deltas[positive], regression_targets[positive], beta=CASCADE_SMOOTH_L1_BETA, reduction="sum"
    )
    return loss / max(labels.numel(), 1)


class StageSamples(NamedTuple):
    """The RoIs one stage trains on (per-image lists, except the concatenated regression targets)."""

    proposals: list[Tensor]  # (R_i, 4) boxes
    matched_idxs: list[Tensor]  # (R_i,) index of the matched ground-truth box
    labels: list[Tensor]  # (R_i,) int64 in [0, K]
    from_gt: list[Tensor]  # (R_i,) bool, the RoI is an appended ground-truth box
    regression_targets: Tensor  # (R, 4)


def _four(weights: Sequence[float]) -> tuple[float, float, float, float]:
    wx, wy, ww, wh = (float(v) for v in weights)
    return wx, wy, ww, wh


class CascadeRoIHeads(nn.Module):
    """S stages, each with its own box head, predictor, box coder, matcher, ``cls_loss`` and mask head.

    Args (keyword-only):
        box_roi_pool: RoIAlign shared by every stage.
        box_heads, box_predictors, cls_losses: one per stage; ``cls_losses`` share one ``Activation``.
        iou_thresholds: (S,) foreground IoU of each stage (also its background threshold, as in Cascade R-CNN).
        box_coder_weights: (S,) per-stage ``BoxCoder`` weights, the inverse of the official target stds.
        loss_weights: (S,) per-stage loss weights.
        batch_size_per_image, positive_fraction: RoI sampling of every stage (512, 0.25).
        score_thresh, nms_thresh, detections_per_img: test-time filtering (LVIS: 1e-4, 0.5 or 0.3, 300).
        mask_roi_pool: mask RoIAlign shared by every stage.
        mask_heads, mask_predictors: one per stage (class-specific logits over K + 1 slots).
    """

    def __init__(
        self,
        *,
        box_roi_pool: MultiScaleRoIAlign,
        box_heads: Sequence[nn.Module],
        box_predictors: Sequence[GolBoxPredictor],
        cls_losses: Sequence[ClassificationLoss],
        iou_thresholds: Sequence[float],
        box_coder_weights: Sequence[Sequence[float]],
        loss_weights: Sequence[float],
        batch_size_per_image: int,
        positive_fraction: float,
        score_thresh: float,
        nms_thresh: float,
        detections_per_img: int,
        mask_roi_pool: MultiScaleRoIAlign,
        mask_heads: Sequence[nn.Module],
        mask_predictors: Sequence[nn.Module],
    ) -> None:
        super().__init__()
        lengths = {
            len(box_heads),
            len(box_predictors),
            len(cls_losses),
            len(iou_thresholds),
            len(box_coder_weights),
            len(loss_weights),
            len(mask_heads),
            len(mask_predictors),
        }
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(
                "cascade stages disagree: give one box head, predictor, loss, IoU threshold, box-coder weight, "
                "loss weight, mask head and mask predictor per stage (got "
                f"{len(box_heads)}, {len(box_predictors)}, {len(cls_losses)}, {len(iou_thresholds)}, "
                f"{len(box_coder_weights)}, {len(loss_weights)}, {len(mask_heads)}, {len(mask_predictors)})"
            )
        self.box_roi_pool = box_roi_pool
        # Mask R-CNN's module names with a stage index (see the module docstring).
        self.box_head = nn.ModuleList(box_heads)
        self.box_predictor = nn.ModuleList(box_predictors)
        self.cls_loss = nn.ModuleList(cls_losses)
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        self.loss_weights = tuple(float(w) for w in loss_weights)
        # Cascade R-CNN: each stage's positives and negatives split at its own IoU (no ignored band, no
        # low-quality matches), as mmdet's MaxIoUAssigner with pos_iou_thr = neg_iou_thr = min_pos_iou.
        self.proposal_matchers = [Matcher(t, t, allow_low_quality_matches=False) for t in self.iou_thresholds]
        self.box_coders = [BoxCoder(_four(w)) for w in box_coder_weights]
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.mask_roi_pool = mask_roi_pool
        self.mask_head = nn.ModuleList(mask_heads)
        self.mask_predictor = nn.ModuleList(mask_predictors)

    # Whether each stage's mask branch trains on its own box branch's refined boxes (HTC) or on its samples.
    interleaved: ClassVar[bool] = False

    @property
    def num_stages(self) -> int:
        return len(self.box_head)

    def forward(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """torchvision's RoI-heads interface.

        Training returns ``([], losses)`` with ``loss_classifier_stage{s}``, ``loss_box_reg_stage{s}`` and
        ``loss_mask_stage{s}``, already multiplied by the stage weights; evaluation returns one dict per image with
        ``boxes`` (N, 4), ``labels`` (N,), ``scores`` (N,) and ``masks`` (N, 1, 28, 28) and no losses.
        """
        if not self.training:
            return self._detect(features, proposals, image_shapes), {}
        targets = check_training_targets(targets, owner=type(self).__name__)

        losses: dict[str, Tensor] = {}
        for stage in range(self.num_stages):
            samples = self.select_training_samples(stage, proposals, targets)
            class_logits, deltas = self._stage(stage, features, samples.proposals, image_shapes)  # (R, L), (R, 4)
            labels = torch.cat(samples.labels)  # (R,)
            weight = self.loss_weights[stage]
            rois_per_image = [len(lab) for lab in samples.labels]
            losses[f"loss_classifier_stage{stage}"] = weight * self.cls_loss[stage](
                class_logits, labels, rois_per_image=rois_per_image
            )
            losses[f"loss_box_reg_stage{stage}"] = weight * agnostic_box_loss(
                deltas, labels, samples.regression_targets
            )
            if stage + 1 < self.num_stages or self.interleaved:
                proposals = self._refine(stage, deltas.detach(), samples.proposals, image_shapes)
                # Drop the ground-truth rows (the next stage appends the ground truth itself) and boxes too thin
                # to encode against.
                proposals = [
                    boxes[~from_gt & _wide_enough(boxes)] for boxes, from_gt in zip(proposals, samples.from_gt)
                ]
            # Cascade: the stage's mask head trains on the positives of the stage's own samples. Interleaved (HTC):
            # on the positives of the refined boxes, matched and sampled again at the stage's IoU.
            mask_samples = self.select_training_samples(stage, proposals, targets) if self.interleaved else samples
            losses[f"loss_mask_stage{stage}"] = weight * mask_loss(
                self.stage_mask_branch(stage), features, mask_samples.proposals, mask_samples.matched_idxs,
                mask_samples.labels, targets, image_shapes,
            )  # fmt: skip
        return [], losses

    def stage_mask_branch(self, stage: int) -> MaskBranch:
        """Stage ``stage``'s mask branch (the shared mask RoIAlign, the stage's head and predictor)."""
        return MaskBranch(self.mask_roi_pool, self.mask_head[stage], self.mask_predictor[stage])

    def stage_mask_features(self, pooled: Tensor) -> list[Tensor]:
        """Every stage's mask features (S x (M, D, 14, 14)) of the same pooled RoIs (M, C, 14, 14): each stage's
        own head, independently."""
        return [head(pooled) for head in self.mask_head]

    def _stage(
        self, stage: int, features: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> tuple[Tensor, Tensor]:
        """Stage ``stage``'s class logits (R, L) and deltas (R, 4) for the boxes of all images."""
        pooled = self.box_roi_pool(features, boxes, image_shapes)
        return self.box_predictor[stage](self.box_head[stage](pooled))

    def _refine(
        self, stage: int, deltas: Tensor, boxes: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> list[Tensor]:
        """Per image: the boxes moved by stage ``stage``'s (R, 4) deltas, clipped to the image."""
        concat = torch.cat(boxes)  # (R, 4)
        # Decode in the boxes' precision: under autocast the deltas are half, and the refined boxes feed the next
        # stage (torchvision's decode would cast the boxes down to the deltas' dtype).
        refined = self.box_coders[stage].decode_single(deltas.to(concat.dtype), concat)  # (R, 4)
        return [
            box_ops.clip_boxes_to_image(image_boxes, shape)
            for image_boxes, shape in zip(refined.split([len(b) for b in boxes]), image_shapes)
        ]

    @torch.no_grad()
    def select_training_samples(
        self, stage: int, proposals: list[Tensor], targets: list[dict[str, Tensor]]
    ) -> StageSamples:
        """torchvision's ``select_training_samples`` with stage ``stage``'s matcher and box coder.

        The ground truth is appended to every stage's proposals (mmdet's ``add_gt_as_proposals``) and the sampled
        RoIs remember which of them are ground truth, so that only predicted boxes are passed on.
        """
        matcher, coder = self.proposal_matchers[stage], self.box_coders[stage]
        all_boxes, all_matched, all_labels, all_gt_boxes, all_from_gt = [], [], [], [], []
        for image_proposals, target in zip(proposals, targets):
            gt_boxes = target["boxes"].to(image_proposals.dtype)  # (G, 4)
            gt_labels = target["labels"]  # (G,)
            boxes = torch.cat([image_proposals, gt_boxes])  # (P + G, 4)
            from_gt = torch.arange(len(boxes), device=boxes.device) >= len(image_proposals)  # (P + G,)
            if gt_boxes.numel() == 0:  # an image without objects: every RoI is background
                matched = torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device)
                labels = torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device)
                matched_gt_boxes = torch.zeros_like(boxes)
            else:
                match = matcher(box_ops.box_iou(gt_boxes, boxes))  # (P + G,), -1 below the threshold
                matched = match.clamp(min=0)
                labels = gt_labels[matched].to(torch.int64)
                labels[match == Matcher.BELOW_LOW_THRESHOLD] = 0
                labels[match == Matcher.BETWEEN_THRESHOLDS] = -1  # never with equal thresholds; kept for parity
                matched_gt_boxes = gt_boxes[matched]
            all_boxes.append(boxes)
            all_matched.append(matched)
            all_labels.append(labels)
            all_gt_boxes.append(matched_gt_boxes)
            all_from_gt.append(from_gt)

        sampled_pos, sampled_neg = self.fg_bg_sampler(all_labels)
        fields: tuple[list[Tensor], ...] = ([], [], [], [], [])
        for pos, neg, *image_fields in zip(
            sampled_pos, sampled_neg, all_boxes, all_matched, all_labels, all_from_gt, all_gt_boxes
        ):
            keep = torch.where(pos | neg)[0]
            for out, value in zip(fields, image_fields):
                out.append(value[keep])
        kept_boxes, kept_matched, kept_labels, kept_from_gt, kept_gt_boxes = fields
        regression_targets = coder.encode_single(torch.cat(kept_gt_boxes), torch.cat(kept_boxes))  # (R, 4)
        return StageSamples(kept_boxes, kept_matched, kept_labels, kept_from_gt, regression_targets)

    def _detect(
        self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list[tuple[int, int]]
    ) -> list[dict[str, Tensor]]:
        """Test time: every stage on its own boxes, activate the mean raw logits, filter, average the masks."""
        boxes = proposals
        stage_logits = []
        for stage in range(self.num_stages):
            class_logits, deltas = self._stage(stage, features, boxes, image_shapes)  # (R, L), (R, 4)
            stage_logits.append(class_logits)
            if stage + 1 < self.num_stages:
                boxes = self._refine(stage, deltas, boxes, image_shapes)
        # ``boxes`` are now the last stage's input boxes and ``deltas`` its regression.
        last_loss: ClassificationLoss = self.cls_loss[-1]  # type: ignore[assignment]  # ModuleList items are Modules
        scores = last_loss.scores(torch.stack(stage_logits).mean(dim=0))  # (R, K)
        final = self._refine(self.num_stages - 1, deltas, boxes, image_shapes)

        results = []
        for image_boxes, image_scores in zip(final, scores.split([len(b) for b in boxes])):
            # Class-agnostic regression: every class of a RoI shares its box.
            candidates = image_boxes[:, None, :].expand(-1, image_scores.shape[1], -1)  # (R_i, K, 4)
            kept_boxes, kept_scores, kept_labels = select_detections(
                candidates,
                image_scores,
                score_thresh=self.score_thresh,
                nms_thresh=self.nms_thresh,
                detections_per_img=self.detections_per_img,
            )
            results.append({"boxes": kept_boxes, "labels": kept_labels, "scores": kept_scores})

        for image_masks, result in zip(self.ensemble_masks(features, results, image_shapes), results):
            result["masks"] = image_masks
        return results

    def ensemble_masks(
        self, features: dict[str, Tensor], results: list[dict[str, Tensor]], image_shapes: list[tuple[int, int]]
    ) -> list[Tensor]:
        """Per image (N_i, 1, 28, 28): the mean over stages of each stage's sigmoid mask of the detection's class.

        ``results`` hold each image's ``boxes`` (N_i, 4) and ``labels`` (N_i,); the RoIAlign runs once.
        """
        labels = [r["labels"] for r in results]
        pooled = self.mask_roi_pool(features, [r["boxes"] for r in results], image_shapes)  # (N, C, 14, 14)
        stage_masks = [
            mask_probabilities(predictor, stage_features, labels)  # per image (N_i, 1, 28, 28)
            for stage_features, predictor in zip(self.stage_mask_features(pooled), self.mask_predictor)
        ]
        return [torch.stack(per_stage).mean(dim=0) for per_stage in zip(*stage_masks)]


def _wide_enough(boxes: Tensor) -> Tensor:
    """(R, 4) boxes -> (R,) bool: both sides at least ``MIN_REFINED_SIZE``."""
    sides = boxes[:, 2:] - boxes[:, :2]  # (R, 2)
    return (sides >= MIN_REFINED_SIZE).all(dim=1)
