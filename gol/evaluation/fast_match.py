"""Greedy detection-to-annotation matching of lvis-api's ``evaluate_img``, vectorised over (image, category) groups.

Shape shorthand: A = 4 area ranges, T = 10 IoU thresholds, q = groups (one image and one category with both
detections and annotations) of one bucket, W = annotation slots per group in the bucket (padded), n = detections
of the bucket, stored group after group, each group's in lvis-api's order (score descending, ties in result order).

lvis-api, per group, area range and threshold, walks the detections in order; each takes, among annotations
not yet taken whose IoU is >= the threshold, the *last* one with the highest IoU (its loop replaces the
best match on ``iou >= best``), preferring annotations that are not ignored in the area range (they are sorted
first, and the loop stops at the first ignored one once it holds a regular match). The walk is sequential in
the detections, so here it runs over detection rank r, all groups, areas and thresholds at once.
"""

from __future__ import annotations

import numpy as np

from gol.evaluation.summary import IOU_THRESHOLDS


def match_bucket(
    iou: np.ndarray, group_start: np.ndarray, group_size: np.ndarray, gt_ignore: np.ndarray, gt_id_nonzero: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Match one bucket of groups.

    Args:
        iou: (n, W) float64 IoU of each detection with its group's annotations (in file order), -1 in padding.
        group_start: (q,) first row of each group in ``iou``; groups must be sorted by size, largest first.
        group_size: (q,) detections per group (non-increasing).
        gt_ignore: (A, q, W) bool, annotation ignored in each area range (its ``ignore`` flag or area outside).
        gt_id_nonzero: (q, W) bool, annotation id != 0 (lvis-api records a match as the annotation's id, so a
            match with id 0 counts as no match).

    Returns:
        (A, T, n) bool ``true_match`` (lvis-api's ``dt_m != 0``) and (A, T, n) bool ``matched_ignored``
        (matched an annotation ignored in the area range: lvis-api's ``dt_ig`` from the match).
    """
    num_areas, q, width = gt_ignore.shape
    thresholds = IOU_THRESHOLDS[None, :, None, None]  # (1, T, 1, 1)
    shape = (num_areas, thresholds.shape[1], iou.shape[0])
    true_match = np.zeros(shape, dtype=bool)  # (A, T, n)
    matched_ignored = np.zeros(shape, dtype=bool)  # (A, T, n)
    taken = np.zeros((num_areas, thresholds.shape[1], q, width), dtype=bool)  # (A, T, q, W)
    check_ids = not bool(gt_id_nonzero.all())
    # Groups are sorted by size, so those with a detection of rank r are a prefix of the groups.
    for r, g in enumerate(_prefix_lengths(group_size)):
        rows = group_start[:g] + r  # (g,)
        row_iou = iou[rows][None, None]  # (1, 1, g, W)
        eligible = ~taken[:, :, :g] & (row_iou >= thresholds)  # (A, T, g, W)
        ignored = gt_ignore[:, None, :g]  # (A, 1, g, W)
        regular = eligible & ~ignored
        has_regular = regular.any(axis=3)  # (A, T, g)
        candidates = np.where(has_regular[..., None], regular, eligible)  # (A, T, g, W)
        found = candidates.any(axis=3)  # (A, T, g)
        if not found.any():
            continue
        score = np.where(candidates, row_iou, -np.inf)  # (A, T, g, W)
        slot = width - 1 - np.argmax(score[..., ::-1], axis=3)  # (A, T, g): last slot with the top IoU
        a, t, j = np.nonzero(found)
        taken[a, t, j, slot[a, t, j]] = True
        matched_ignored[:, :, rows] = found & ~has_regular  # no regular candidate: the match is an ignored one
        if check_ids:
            found = found & gt_id_nonzero[np.arange(g), slot]
        true_match[:, :, rows] = found
    return true_match, matched_ignored


def _prefix_lengths(group_size: np.ndarray) -> list[int]:
    """For each rank r < max size, how many groups (a prefix, sizes non-increasing) have a detection of rank r."""
    if group_size.size == 0:
        return []
    ranks = np.arange(int(group_size[0]))  # (max size,)
    return np.searchsorted(-group_size, -ranks, side="left").tolist()
