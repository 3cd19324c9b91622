"""What lvis-api does to a results list before matching, on arrays: which detections it evaluates, with what area.

Shape shorthand: N = detections given, M = detections kept. Every engine evaluates the same prepared set, so the
preparation is written once, here:

- ``LVISResults.limit_dets_per_image``: :func:`cap_per_image` (top ``max_dets`` of each image by score across
  categories, ties in result order); the AP-fixed protocol instead keeps :func:`top_per_category`.
- ``LVISResults`` areas: a detection's area is its box's ``w * h`` when the results carry ``bbox``, else its mask's
  pixel count; segm results carry their boxes or not as ``segm_area`` ("box" or "mask") says (:func:`areas`).
- ``LVIS.get_ann_ids``: only ``0 < area < inf`` is evaluated (:func:`evaluated`).
"""

from __future__ import annotations

import numpy as np

from gol.evaluation.detections import Detections


def cap_per_image(image_index: np.ndarray, scores: np.ndarray, max_dets: int) -> np.ndarray:
    """Indices (ascending) of the detections lvis-api keeps: the top ``max_dets`` of each image by score,
    ties kept in result order (Python's stable ``sorted(reverse=True)``); -1 keeps everything."""
    return _top_per_group(image_index, scores, max_dets)


def top_per_category(category_index: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Indices (ascending) of the top ``k`` detections of each category by score over the whole set, ties in result
    order: the selection of Dave et al.'s AP-fixed and AP-pool (large-vocab-devil ``evaluate_ap_fixed.py``)."""
    return _top_per_group(category_index, scores, k)


def _top_per_group(group: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    n = group.size
    if k < 0 or n == 0:
        return np.arange(n)
    order = np.lexsort((np.arange(n), -scores, group))  # group, score descending, result order
    sorted_groups = group[order]
    starts = np.searchsorted(sorted_groups, sorted_groups, side="left")
    rank = np.arange(n) - starts  # (N,) rank within its group
    return np.sort(order[rank < k])


def areas(dets: Detections, rows: np.ndarray, iou_type: str, segm_area: str) -> np.ndarray:
    """(n,) areas lvis-api gives detections ``rows`` for ``iou_type``: box ``w * h`` where the results it gets
    carry boxes (bbox results with boxes; segm results with ``segm_area="box"``), else mask areas."""
    use_boxes = dets.boxes is not None and (iou_type == "bbox" or segm_area == "box")
    if use_boxes:
        boxes = dets.boxes[rows]  # type: ignore[index]  # (n, 4) xywh
        return boxes[:, 2] * boxes[:, 3]
    return dets.segmentations.areas(rows)  # type: ignore[union-attr]


def evaluated(area: np.ndarray) -> np.ndarray:
    """(n,) bool: the detections or annotations lvis-api evaluates (``0 < area < inf``)."""
    return (area > 0) & (area < np.inf)
