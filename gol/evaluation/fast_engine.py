"""The fast engine: lvis-api's evaluation with the same numbers, without its loops over every (image, category).

Shape shorthand: M = detections kept by the per-image cap, N = those lvis-api evaluates (federated categories,
0 < area < inf), G = annotations evaluated, A = 4 area ranges, T = 10 IoU thresholds, K = categories,
W = annotation slots per group in a bucket. A *group* is one (image, category) pair, keyed
``image_index * K + category_index``.

Where lvis-api's semantics live here:
- ``LVISResults.limit_dets_per_image``: :func:`cap_per_image` (top ``max_dets`` per image by score across
  categories, ties in result order).
- ``LVISResults`` areas: box ``w * h`` when results have boxes, else the mask area. segm results carry their
  boxes or not as ``segm_area`` says ("box" or "mask"), so segm areas are box or mask areas accordingly.
- ``LVIS.get_ann_ids``: only 0 < area < inf is evaluated, for annotations and detections alike.
- ``LVISEval._prepare``: a detection is kept only if its category is annotated in the image or listed in the
  image's ``neg_category_ids``.
- ``evaluate_img``: :mod:`gol.evaluation.fast_match`; unmatched detections are ignored outside the area range
  or in a ``not_exhaustive_category_ids`` category; a match counts as true only if the annotation id is
  non-zero (lvis-api stores the id as the match flag).
- ``accumulate``/``summarize``: :mod:`gol.evaluation.fast_accumulate`, :func:`gol.evaluation.summary.summarize`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from gol.evaluation.detections import Detections
from gol.evaluation.fast_accumulate import accumulate
from gol.evaluation.fast_match import match_bucket
from gol.evaluation.ground_truth import GroundTruth
from gol.evaluation.result import IouTypeResult
from gol.evaluation.summary import AREA_RANGES, IOU_THRESHOLDS, summarize

_AREA_LO = np.array([lo for lo, _ in AREA_RANGES], dtype=np.float64)[:, None]  # (A, 1)
_AREA_HI = np.array([hi for _, hi in AREA_RANGES], dtype=np.float64)[:, None]  # (A, 1)


def cap_per_image(image_index: np.ndarray, scores: np.ndarray, max_dets: int) -> np.ndarray:
    """Indices (ascending) of the detections lvis-api keeps: the top ``max_dets`` of each image by score,
    ties kept in result order (Python's stable ``sorted(reverse=True)``); -1 keeps everything."""
    n = image_index.size
    if max_dets < 0 or n == 0:
        return np.arange(n)
    order = np.lexsort((np.arange(n), -scores, image_index))  # image, score descending, result order
    sorted_images = image_index[order]
    starts = np.searchsorted(sorted_images, sorted_images, side="left")
    rank = np.arange(n) - starts  # (n,) rank within its image
    return np.sort(order[rank < max_dets])


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(n,) bool: which ``keys`` occur in the sorted array ``sorted_keys``."""
    if sorted_keys.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    idx = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[idx] == keys


def mask_areas(rles: list[dict[str, Any]]) -> np.ndarray:
    """(n,) float64 pixel areas of compressed RLEs.

    pycocotools' ``area`` sizes a scratch array as uint8 from the count, which NumPy 2 refuses for more than
    255 masks, so it is called on chunks of 255.
    """
    chunks = [mask_utils.area(rles[i : i + 255]) for i in range(0, len(rles), 255)]
    return np.concatenate(chunks).astype(np.float64) if chunks else np.zeros(0)


def box_iou(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of xywh boxes ``dt`` (..., 4) and ``gt`` (..., 4), broadcast; the operations of pycocotools' bbIou
    in the same order, so values equal it bit for bit."""
    w = np.minimum(dt[..., 2] + dt[..., 0], gt[..., 2] + gt[..., 0]) - np.maximum(dt[..., 0], gt[..., 0])
    h = np.minimum(dt[..., 3] + dt[..., 1], gt[..., 3] + gt[..., 1]) - np.maximum(dt[..., 1], gt[..., 1])
    inter = w * h
    union = dt[..., 2] * dt[..., 3] + gt[..., 2] * gt[..., 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((w > 0) & (h > 0), inter / union, 0.0)


class FastEvaluator:
    """Prepares what bbox and segm share (the cap, federated filter, groups); :meth:`run` evaluates one IoU type.

    ``run`` may be called from several threads at once. ``segm_area`` ("box" needs ``dets.boxes``) is where segm
    detections' areas come from.
    """

    def __init__(
        self,
        gt: GroundTruth,
        dets: Detections,
        image_index: np.ndarray,
        category_index: np.ndarray,
        *,
        max_dets: int,
        segm_area: str = "mask",
    ) -> None:
        self.gt, self.dets, self.segm_area = gt, dets, segm_area
        self.kept = cap_per_image(image_index, dets.scores, max_dets)  # (M,)
        k = gt.num_categories
        self.image = image_index[self.kept]  # (M,)
        self.category = category_index[self.kept]  # (M,)
        self.score = dets.scores[self.kept]  # (M,)
        self.key = self.image * k + self.category  # (M,)
        gt_key = gt.ann_image * k + gt.ann_category  # (G,)
        self.federated = _contains(np.unique(gt_key), self.key) | _contains(gt.neg_keys, self.key)  # (M,)
        self.not_exhaustive = _contains(gt.not_exhaustive_keys, self.key)  # (M,)
        self.gt_order = np.argsort(gt_key, kind="stable")  # annotations by group, file order within
        self.gt_key = gt_key[self.gt_order]
        gt_area = gt.ann_area[self.gt_order]
        # (A, G) annotation ignored per area range: lvis-api's `ignore or area < lo or area > hi`.
        self.gt_ignore = gt.ann_ignore[self.gt_order][None] | (gt_area < _AREA_LO) | (gt_area > _AREA_HI)
        self.num_gt = np.zeros((k, len(AREA_RANGES)), dtype=np.int64)  # (K, A)
        for a in range(len(AREA_RANGES)):
            self.num_gt[:, a] = np.bincount(gt.ann_category[self.gt_order][~self.gt_ignore[a]], minlength=k)

    def run(self, iou_type: str) -> IouTypeResult:
        """Evaluate ``iou_type`` ("bbox" or "segm"): lvis-api's metrics, precision and recall arrays."""
        candidates = np.flatnonzero(self.federated)  # only these can be evaluated; skip the rest's geometry
        area, geometry = self._geometry(iou_type, candidates)
        keep = np.flatnonzero((area > 0) & (area < np.inf))
        # Group order: (image, category) group, then score descending, ties in result order.
        kept = candidates[keep]
        order = keep[np.lexsort((kept, -self.score[kept], self.key[kept]))]
        ev, area, geometry = candidates[order], area[order], _subset(geometry, order)  # (N,) positions in M
        # Accumulation order: category, score descending, image id, result order.
        acc = np.lexsort((ev, self.image[ev], -self.score[ev], self.category[ev]))
        acc_position = np.empty_like(acc)
        acc_position[acc] = np.arange(acc.size)  # group-order index -> accumulation-order index
        shape = (len(AREA_RANGES), IOU_THRESHOLDS.size, ev.size)
        true_match = np.zeros(shape, dtype=bool)  # (A, T, N) in accumulation order
        matched_ignored = np.zeros(shape, dtype=bool)  # (A, T, N)
        for rows, bucket_match, bucket_ignored in self._match(iou_type, self.key[ev], geometry):
            true_match[:, :, acc_position[rows]] = bucket_match
            matched_ignored[:, :, acc_position[rows]] = bucket_ignored
        ev, area = ev[acc], area[acc]
        # Unmatched detections are ignored outside the area range or in a not-exhaustive category.
        outside = (area < _AREA_LO) | (area > _AREA_HI) | self.not_exhaustive[ev][None]  # (A, N)
        ignored = matched_ignored | (~true_match & outside[:, None, :])  # (A, T, N)
        true_pos = true_match & ~ignored
        false_pos = ~(true_match | ignored)
        precision, recall = accumulate(true_pos, false_pos, self.category[ev], self.num_gt)
        return IouTypeResult(iou_type, summarize(precision, self.gt.frequency_groups()), precision, recall)

    def _geometry(self, iou_type: str, rows: np.ndarray) -> tuple[np.ndarray, Any]:
        """Areas (n,) and boxes (n, 4) or RLEs of kept detections ``rows``, as ``LVISResults`` derives them."""
        idx = self.kept[rows]
        boxes = self.dets.boxes[idx] if self.dets.boxes is not None else None  # (n, 4) xywh
        if iou_type == "bbox" and boxes is not None:
            return boxes[:, 2] * boxes[:, 3], boxes
        rles = _take(self.dets.segmentations, idx)  # type: ignore[arg-type]
        if iou_type == "segm" and self.segm_area == "box":  # segm results with their boxes: w * h
            return boxes[:, 2] * boxes[:, 3], rles  # type: ignore[index]
        area = mask_areas(rles)
        if iou_type == "bbox":  # mask-only results: lvis-api takes the box from the mask
            return area, (mask_utils.toBbox(rles) if rles else np.zeros((0, 4)))
        return area, rles

    def _match(
        self, iou_type: str, key: np.ndarray, geometry: Any
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per bucket of groups: detection rows (n_b,) (in group order) and their (A, T, n_b) ``true_match`` and
        ``matched_ignored`` flags (see :func:`match_bucket`). Detections without annotations match nothing."""
        det_keys, det_start, det_count = np.unique(key, return_index=True, return_counts=True)
        gt_keys, gt_start, gt_count = np.unique(self.gt_key, return_index=True, return_counts=True)
        has_gt = _contains(gt_keys, det_keys)
        where = np.searchsorted(gt_keys, det_keys[has_gt])
        det_start, det_count = det_start[has_gt], det_count[has_gt]
        g_start, g_count = gt_start[where], gt_count[where]
        gt_id_nonzero = self.gt.ann_id[self.gt_order] != 0  # (G,)
        # Bucket groups by annotation count (padded to a power of two) so padding stays small.
        width = 1 << np.ceil(np.log2(np.maximum(g_count, 1))).astype(np.int64)
        for w in np.unique(width).tolist():
            sel = np.flatnonzero(width == w)
            sizes, starts = det_count[sel], det_start[sel]
            rows = np.repeat(starts - (np.cumsum(sizes) - sizes), sizes) + np.arange(sizes.sum())  # (n_b,)
            slots = np.arange(w)[None, :]  # (1, W)
            gt_pos = np.where(slots < g_count[sel][:, None], g_start[sel][:, None] + slots, -1)  # (q, W)
            iou = self._iou(iou_type, geometry, rows, gt_pos, sizes)  # (n_b, W)
            # A detection whose best IoU is below the lowest threshold matches nothing and takes no annotation
            # from the detections after it, so the greedy walk skips it.
            live = iou.max(axis=1) >= IOU_THRESHOLDS[0]  # (n_b,)
            group = np.repeat(np.arange(sel.size), sizes)[live]  # (n_live,)
            live_sizes = np.bincount(group, minlength=sel.size)  # (q,)
            order = np.argsort(-live_sizes, kind="stable")  # largest groups first, as match_bucket needs
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            pick = np.flatnonzero(live)[np.argsort(rank[group], kind="stable")]  # group by group, in rank order
            sizes = live_sizes[order]
            padded = np.maximum(gt_pos[order], 0)
            gt_ignore = (gt_pos[order] < 0)[None] | self.gt_ignore[:, padded]  # (A, q, W)
            flags = match_bucket(iou[pick], np.cumsum(sizes) - sizes, sizes, gt_ignore, gt_id_nonzero[padded])
            yield (rows[pick], *flags)

    def _iou(self, iou_type: str, geometry: Any, rows: np.ndarray, gt_pos: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """(n_b, W) IoU of each detection row with its group's annotation slots, -1 in padding."""
        if iou_type == "bbox":
            gt_boxes = self.gt.boxes()[self.gt_order]
            slots = np.repeat(gt_pos, sizes, axis=0)  # (n_b, W)
            iou = box_iou(geometry[rows][:, None, :], gt_boxes[np.maximum(slots, 0)])  # (n_b, W)
            return np.where(slots >= 0, iou, -1.0)
        iou = np.full((rows.size, gt_pos.shape[1]), -1.0)
        counts = (gt_pos >= 0).sum(axis=1).tolist()  # (q,) annotations per group
        gt_rles = self.gt.rles(self.gt_order[gt_pos[gt_pos >= 0]])  # row-major: group after group
        dt_rles = _take(geometry, rows)
        d0 = g0 = 0
        for size, g in zip(sizes.tolist(), counts):
            iou[d0 : d0 + size, :g] = mask_utils.iou(dt_rles[d0 : d0 + size], gt_rles[g0 : g0 + g], [0] * g)
            d0, g0 = d0 + size, g0 + g
        return iou


def _subset(geometry: Any, index: np.ndarray) -> Any:
    """Boxes (n, 4) or a list of RLEs at integer positions ``index``."""
    return geometry[index] if isinstance(geometry, np.ndarray) else _take(geometry, index)


def _take(items: Sequence[Any], index: np.ndarray) -> list[Any]:
    """``items`` at integer positions ``index``, gathered at C speed (hundreds of thousands of RLEs)."""
    return list(map(items.__getitem__, index.tolist()))
