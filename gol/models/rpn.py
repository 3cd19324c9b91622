"""The region proposal network with a choice of box loss: torchvision's smooth-L1 or mmdetection's L1.

torchvision's ``RegionProposalNetwork.compute_loss`` regresses the sampled positive anchors with smooth-L1
(beta 1/9) and divides the sum by the number of sampled anchors (positives and negatives, 256 per image). The
official Mask R-CNN configs (mmdetection 2.21 ``configs/_base_/models/mask_rcnn_r50_fpn.py``, which the GOL
configs inherit) use ``rpn_head.loss_bbox=L1Loss(loss_weight=1.0)`` with the same normalisation
(``AnchorHead.loss_single``: ``avg_factor=num_total_samples`` when sampling); the Cascade configs keep smooth-L1
(beta 1/9). Everything else (anchor assignment at IoU 0.7 / 0.3, 256 samples per image, half positive,
objectness BCE, proposal NMS 0.7) is the same in both and stays torchvision's.

Shape shorthand: A = anchors of the batch (all images and levels together).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import RegionProposalNetwork

from gol.config.detector import BoxLoss

# torchvision's (and mmdetection's) RPN training settings.
RPN_FG_IOU_THRESH = 0.7
RPN_BG_IOU_THRESH = 0.3
RPN_BATCH_SIZE_PER_IMAGE = 256
RPN_POSITIVE_FRACTION = 0.5
RPN_NMS_THRESH = 0.7
RPN_SMOOTH_L1_BETA = 1.0 / 9.0


def rpn_box_loss(deltas: Tensor, targets: Tensor, *, num_sampled: int, box_loss: BoxLoss | str) -> Tensor:
    """(P, 4) predicted and target deltas of the sampled positive anchors -> their summed loss / ``num_sampled``."""
    if BoxLoss(box_loss) is BoxLoss.l1:
        total = F.l1_loss(deltas, targets, reduction="sum")
    else:
        total = F.smooth_l1_loss(deltas, targets, beta=RPN_SMOOTH_L1_BETA, reduction="sum")
    return total / num_sampled


class GolRPN(RegionProposalNetwork):
    """torchvision's RPN whose box term is ``rpn_box_loss`` with ``box_loss`` (``smooth_l1`` or ``l1``)."""

    def __init__(
        self,
        anchor_generator: AnchorGenerator,
        head: nn.Module,
        *,
        pre_nms_top_n: dict[str, int],
        post_nms_top_n: dict[str, int],
        box_loss: BoxLoss | str = BoxLoss.smooth_l1,
    ) -> None:
        super().__init__(
            anchor_generator, head, RPN_FG_IOU_THRESH, RPN_BG_IOU_THRESH, RPN_BATCH_SIZE_PER_IMAGE,
            RPN_POSITIVE_FRACTION, pre_nms_top_n, post_nms_top_n, RPN_NMS_THRESH,
        )  # fmt: skip
        self.box_loss = BoxLoss(box_loss)

    def compute_loss(
        self, objectness: Tensor, pred_bbox_deltas: Tensor, labels: list[Tensor], regression_targets: list[Tensor]
    ) -> tuple[Tensor, Tensor]:
        """(A, 1) objectness, (A, 4) deltas, per-image anchor labels and targets -> (objectness, box) losses."""
        sampled_pos, sampled_neg = self.fg_bg_sampler(labels)
        pos = torch.where(torch.cat(sampled_pos, dim=0))[0]
        neg = torch.where(torch.cat(sampled_neg, dim=0))[0]
        sampled = torch.cat([pos, neg], dim=0)
        all_labels = torch.cat(labels, dim=0)
        targets = torch.cat(regression_targets, dim=0)
        box = rpn_box_loss(pred_bbox_deltas[pos], targets[pos], num_sampled=sampled.numel(), box_loss=self.box_loss)
        objectness_loss = F.binary_cross_entropy_with_logits(objectness.flatten()[sampled], all_labels[sampled])
        return objectness_loss, box
