"""Per-class NMS over many classes: torchvision's ``batched_nms`` with its per-class loop made linear.

Shape shorthand: N = candidate boxes of one image (RoIs x classes above the score threshold).

On large inputs torchvision runs NMS class by class, finding each class's boxes with a comparison over all N
(``_batched_nms_vanilla``): N x (classes present) work, which at LVIS's 1203 classes and an untrained or
low-threshold head (N ~ 200 RoIs x 1203) is most of a test image's CPU time. Here the boxes are grouped by class once
(a stable sort, so each class's boxes keep their order), and each group goes through the same ``nms`` call in the
same order: the kept indices are torchvision's, in its order (tested). Below torchvision's own size rule it uses its
coordinate-offset path, which is what torchvision returns there.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import boxes as box_ops

# torchvision 0.29's rule (torchvision/ops/boxes.py, batched_nms): the per-class loop above this many box numbers.
LOOP_ABOVE = {"cpu": 4_000}
LOOP_ABOVE_ELSEWHERE = 100_000


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Indices kept by NMS within each class of ``idxs``, best score first: ``torchvision.ops.batched_nms``.

    Args:
        boxes: (N, 4) xyxy; scores: (N,); idxs: (N,) int64 class of each box.
    """
    if boxes.numel() <= LOOP_ABOVE.get(boxes.device.type, LOOP_ABOVE_ELSEWHERE):
        return box_ops.batched_nms(boxes, scores, idxs, iou_threshold)
    order = torch.argsort(idxs, stable=True)  # (N,) grouped by class, original order within a class
    counts = torch.unique_consecutive(idxs[order], return_counts=True)[1].tolist()
    keep_mask = torch.zeros_like(scores, dtype=torch.bool)
    for members in torch.split(order, counts):
        keep_mask[members[box_ops.nms(boxes[members], scores[members], iou_threshold)]] = True
    kept = torch.where(keep_mask)[0]
    return kept[scores[kept].sort(descending=True)[1]]
