"""lvis-api's ``accumulate``: per-category precision/recall curves sampled at 101 recall thresholds.

Shape shorthand: A = 4 area ranges, T = 10 IoU thresholds, R = 101 recall thresholds, K = categories,
N = evaluated detections sorted by category, then as lvis-api concatenates and merge-sorts them (score
descending, ties by image id, then by result order). Every operation mirrors lvis-api's float64 arithmetic
(cumulative counts, ``tp / num_gt``, ``tp / (fp + tp + eps)``, the right-to-left maximum, ``searchsorted``
on the left), so the arrays equal lvis-api's bit for bit.
"""

from __future__ import annotations

import numpy as np

from gol.evaluation.summary import RECALL_THRESHOLDS


def accumulate(
    true_pos: np.ndarray, false_pos: np.ndarray, category: np.ndarray, num_gt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Precision (T, R, K, A) and recall (T, K, A), -1 where a category has no regular annotation in an area.

    Args:
        true_pos, false_pos: (A, T, N) bool, lvis-api's ``tps``/``fps`` of each detection.
        category: (N,) int64 category index of each detection, non-decreasing.
        num_gt: (K, A) int64 annotations not ignored per category and area range.
    """
    num_areas, num_thrs, _ = true_pos.shape
    num_cats = num_gt.shape[0]
    num_rec = RECALL_THRESHOLDS.size
    precision = -np.ones((num_thrs, num_rec, num_cats, num_areas))
    recall = -np.ones((num_thrs, num_cats, num_areas))
    bounds = np.searchsorted(category, np.arange(num_cats + 1))  # (K + 1,)
    for k in np.flatnonzero(num_gt.max(axis=1) > 0).tolist():
        areas = np.flatnonzero(num_gt[k] > 0)  # lvis-api skips an area range without regular annotations
        lo, hi = bounds[k], bounds[k + 1]
        n = hi - lo
        if n == 0:  # annotations but no detections: recall 0 and precision 0 at every threshold
            precision[:, :, k, areas] = 0.0
            recall[:, k, areas] = 0.0
            continue
        tp = np.cumsum(true_pos[areas, :, lo:hi], axis=2).astype(np.float64)  # (a, T, n)
        fp = np.cumsum(false_pos[areas, :, lo:hi], axis=2).astype(np.float64)  # (a, T, n)
        rc = tp / num_gt[k, areas][:, None, None]  # (a, T, n)
        pr = tp / (fp + tp + np.spacing(1))  # (a, T, n)
        pr = np.maximum.accumulate(pr[..., ::-1], axis=2)[..., ::-1]  # each value -> max to its right
        recall[:, k, areas] = rc[..., -1].T  # (T, a)
        # First index with rc >= threshold (searchsorted "left") = how many entries have fewer thresholds <= rc.
        below = np.searchsorted(RECALL_THRESHOLDS, rc, side="right")  # (a, T, n) thresholds <= rc
        rows = np.arange(areas.size * num_thrs)[:, None] * (num_rec + 1)  # (a * T, 1)
        hist = np.bincount((rows + below.reshape(-1, n)).ravel(), minlength=rows.size * (num_rec + 1))
        first = np.cumsum(hist.reshape(-1, num_rec + 1), axis=1)[:, :num_rec]  # (a * T, R)
        flat_pr = pr.reshape(-1, n)  # (a * T, n)
        at = np.take_along_axis(flat_pr, np.minimum(first, n - 1), axis=1)  # (a * T, R)
        q = np.where(first < n, at, 0.0).reshape(areas.size, num_thrs, num_rec)  # (a, T, R)
        precision[:, :, k, areas] = q.transpose(1, 2, 0)  # (T, R, a)
    return precision, recall
