"""AP-pool (Dave et al. 2021): precision and recall over a pool of categories matched per category, ranked together.

Matching stays per category, exactly as in LVIS AP; only the accumulation changes: the detections of every category
in a pool (all, r, c or f) are ranked by score together, so a category whose scores run high crowds out the others.
This is large-vocab-devil's ``LVISPooledEval.accumulate`` (``lvdevil/eval_wrapper.py``): area range "all" only, per
pool the per-image records of its categories concatenated image after image (categories in id order within an
image), then merge-sorted by score.

Shape shorthand: T = IoU thresholds, R = 101 recall thresholds, n = detections of one record, g = its annotations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gol.evaluation.summary import RECALL_THRESHOLDS, mean_defined

POOLS = ("all", "r", "c", "f")
POOLED_KEYS = {"all": "AP", "r": "APr", "c": "APc", "f": "APf"}  # metrics.json names of each pool's AP


@dataclass(frozen=True)
class ImageRecord:
    """One (image, category) outcome of matching at area "all": ``scores`` (n,) in the matcher's order,
    ``matched`` (T, n) bool (matched to a non-zero annotation id), ``dt_ignore`` (T, n) bool, ``gt_ignore`` (g,)."""

    scores: np.ndarray
    matched: np.ndarray
    dt_ignore: np.ndarray
    gt_ignore: np.ndarray


# The per-image record fields of each engine's ``eval_imgs``: scores, matched annotation ids, detections ignored,
# annotations ignored (lvis-api's names; hotcoco's follow pycocotools').
LVIS_FIELDS = ("dt_scores", "dt_matches", "dt_ignore", "gt_ignore")
HOTCOCO_FIELDS = ("dtScores", "dtMatches", "dtIgnore", "gtIgnore")


def records_from_eval_imgs(
    eval_imgs: Iterable[Mapping[str, Any] | None],
    fields: tuple[str, str, str, str],
    image_ids: np.ndarray,
    category_ids: np.ndarray,
    num_thrs: int,
) -> dict[tuple[int, int], ImageRecord]:
    """An engine's per-image matching (area "all") as records keyed (image index, category index)."""
    image_position = {int(i): p for p, i in enumerate(image_ids.tolist())}
    category_position = {int(c): k for k, c in enumerate(category_ids.tolist())}
    scores, matches, dt_ignore, gt_ignore = fields
    records: dict[tuple[int, int], ImageRecord] = {}
    for e in eval_imgs:
        if e is None:
            continue
        matched = np.asarray(e[matches], dtype=np.float64).reshape(num_thrs, -1) != 0  # (T, n) matched a non-zero id
        records[image_position[e["image_id"]], category_position[e["category_id"]]] = ImageRecord(
            scores=np.asarray(e[scores], dtype=np.float64),
            matched=matched,
            dt_ignore=np.asarray(e[dt_ignore], dtype=bool).reshape(matched.shape),
            gt_ignore=np.asarray(e[gt_ignore], dtype=bool),
        )
    return records


def pooled_curve(records: Sequence[ImageRecord], num_thrs: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision (T, R) and recall (T,) of one pool from its records in pooling order; -1 where the pool has no
    annotation that is not ignored."""
    precision = -np.ones((num_thrs, RECALL_THRESHOLDS.size))
    recall = -np.ones(num_thrs)
    num_gt = sum(int(np.count_nonzero(~r.gt_ignore)) for r in records)
    if not records or num_gt == 0:
        return precision, recall
    scores = np.concatenate([r.scores for r in records])  # (N,)
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([r.matched for r in records], axis=1)[:, order]  # (T, N)
    ignored = np.concatenate([r.dt_ignore for r in records], axis=1)[:, order]  # (T, N)
    tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)  # (T, N)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)  # (T, N)
    n = scores.size
    if n == 0:
        recall[:] = 0.0
        precision[:] = 0.0
        return precision, recall
    rc = tp / num_gt  # (T, N)
    pr = tp / (fp + tp + np.spacing(1))  # (T, N)
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # each value -> the maximum to its right
    recall[:] = rc[:, -1]
    for t in range(num_thrs):
        idx = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")  # (R,)
        # lvis-api fills the thresholds in order and stops at the first index past the end (the rest stay 0).
        precision[t] = np.where(idx < n, pr[t, np.minimum(idx, n - 1)], 0.0)
    return precision, recall


def pooled_metrics(
    records_of: dict[tuple[int, int], ImageRecord],
    frequency_groups: Sequence[np.ndarray],
    num_categories: int,
    num_thrs: int,
) -> dict[str, float | None]:
    """AP of each pool (``AP`` for all categories, ``APr``/``APc``/``APf``) from records keyed (image index,
    category index); None where a pool has no annotation."""
    groups = {"all": np.arange(num_categories), **dict(zip(("r", "c", "f"), frequency_groups))}
    keys = sorted(records_of)  # image index, then category index: the pooling order
    out: dict[str, float | None] = {}
    for pool in POOLS:
        members = np.zeros(num_categories, dtype=bool)
        members[groups[pool]] = True
        records = [records_of[key] for key in keys if members[key[1]]]
        precision, _ = pooled_curve(records, num_thrs)
        out[POOLED_KEYS[pool]] = mean_defined(precision)
    return out
