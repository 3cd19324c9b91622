"""LVIS evaluation parameters and the averaging of lvis-api's precision array into AP metrics.

Shape shorthand: T = 10 IoU thresholds, R = 101 recall thresholds, K = categories (sorted by id),
A = 4 area ranges (all, small, medium, large). ``precision`` is (T, R, K, A), -1 where a category has no
ground truth in an area range (lvis-api's convention); ``recall`` is (T, K, A).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IOU_TYPES = ("bbox", "segm")
AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
MAX_DETS = 300  # LVIS's per-image detection cap (LVISResults' max_dets)


def recall_keys(max_dets: int = MAX_DETS) -> tuple[str, ...]:
    """lvis-api's names of its recall metrics under a cap of ``max_dets`` per image: AR@300, ARs@300, ..."""
    return tuple(f"AR{area}@{max_dets}" for area in ("", "s", "m", "l"))


def metric_keys(max_dets: int = MAX_DETS) -> tuple[str, ...]:
    """The 13 metrics lvis-api reports: 9 APs and 4 ARs (named after the per-image cap)."""
    return (*AP_KEYS, *recall_keys(max_dets))


METRIC_KEYS = metric_keys()
# The same expressions as lvis-api's Params, so thresholds compare bit-for-bit.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)  # (T,)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)  # (R,)
AREA_RANGES = ((0**2, 1e5**2), (0**2, 32**2), (32**2, 96**2), (96**2, 1e5**2))  # (A,) inclusive bounds


def mean_defined(s: np.ndarray) -> float | None:
    """lvis-api's ``_summarize``: mean over entries > -1, undefined (-1 there, None here) if there are none."""
    defined = s[s > -1]
    return float(np.mean(defined)) if defined.size else None


def summarize(
    precision: np.ndarray,
    recall: np.ndarray,
    frequency_groups: Sequence[np.ndarray],
    max_dets: int = MAX_DETS,
) -> dict[str, float | None]:
    """lvis-api's 13 metrics from a (T, R, K, A) precision and a (T, K, A) recall array, averaged as it averages.

    ``frequency_groups`` are the category indices of the r, c and f groups; ``max_dets`` names the recall metrics.
    """
    t50 = np.flatnonzero(IOU_THRESHOLDS == 0.50)
    t75 = np.flatnonzero(IOU_THRESHOLDS == 0.75)
    out: dict[str, float | None] = {
        "AP": mean_defined(precision[:, :, :, [0]]),
        "AP50": mean_defined(precision[t50][:, :, :, [0]]),
        "AP75": mean_defined(precision[t75][:, :, :, [0]]),
        "APs": mean_defined(precision[:, :, :, [1]]),
        "APm": mean_defined(precision[:, :, :, [2]]),
        "APl": mean_defined(precision[:, :, :, [3]]),
    }
    for key, group in zip(("APr", "APc", "APf"), frequency_groups):
        out[key] = mean_defined(precision[:, :, group, 0])
    for a, key in enumerate(recall_keys(max_dets)):
        out[key] = mean_defined(recall[:, :, [a]])
    return out


def category_ap(precision: np.ndarray) -> np.ndarray:
    """(K,) float64 AP of each category: lvis-api's average (mean over entries > -1) of its (T, R) slice at area
    "all"; NaN where the category has no ground truth."""
    s = precision[:, :, :, 0]  # (T, R, K)
    out = np.full(s.shape[2], np.nan)
    for k in range(s.shape[2]):
        value = mean_defined(s[:, :, k])
        if value is not None:
            out[k] = value
    return out


def metrics_from_lvis(results: dict[str, float], keys: Sequence[str] = METRIC_KEYS) -> dict[str, float | None]:
    """lvis-api's (or hotcoco's) results dict -> our metric dict (floats in [0, 1], None where it reports -1)."""
    return {k: (None if float(results[k]) == -1 else float(results[k])) for k in keys}
