"""What an evaluation returns, and its files: ``metrics.json`` and ``per_category.json`` of the run record.

Shape shorthand: T = 10 IoU thresholds, R = 101 recall thresholds, K = categories (sorted by id), A = 4 areas.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gol.evaluation.ground_truth import Category
from gol.evaluation.summary import IOU_TYPES, METRIC_KEYS, category_ap

EVAL_BLOCK = "eval"  # metrics.json's block of evaluation settings that change the numbers (beside the IoU types)


@dataclass(frozen=True, eq=False)
class IouTypeResult:
    """One IoU type's outcome: the 9 metrics (None where lvis-api gives -1), precision (T, R, K, A) and
    recall (T, K, A) arrays in lvis-api's layout (-1 where undefined)."""

    iou_type: str
    metrics: dict[str, float | None]
    precision: np.ndarray
    recall: np.ndarray

    def category_ap(self) -> np.ndarray:
        """(K,) float64 per-category AP (NaN where the category has no ground truth)."""
        return category_ap(self.precision)


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Per-IoU-type results plus the categories (sorted by id) that index their K axis, and where segm detections'
    areas came from (``segm_area`` "box" or "mask"; None when segm was not evaluated)."""

    engine: str
    categories: tuple[Category, ...]
    by_type: dict[str, IouTypeResult]
    segm_area: str | None = None

    def metrics(self) -> dict[str, dict[str, Any]]:
        """metrics.json's content: ``{"bbox": {"AP": ..., ...}, "segm": {...}, "eval": {"segm_area": "mask"}}``
        (the evaluated IoU types; the ``eval`` block, which names the segm area convention, only with segm)."""
        content: dict[str, dict[str, Any]] = {t: dict(r.metrics) for t, r in self.by_type.items()}
        if self.segm_area is not None:
            content[EVAL_BLOCK] = {"segm_area": self.segm_area}
        return content

    def per_category(self) -> dict[str, list[dict[str, Any]]]:
        """per_category.json's content: id, name, frequency, image_count, bbox_AP, segm_AP (None if undefined)."""
        aps = {t: self.by_type[t].category_ap() if t in self.by_type else None for t in IOU_TYPES}
        rows = []
        for k, cat in enumerate(self.categories):
            row: dict[str, Any] = {
                "id": cat.id,
                "name": cat.name,
                "frequency": cat.frequency,
                "image_count": cat.image_count,
            }
            for t in IOU_TYPES:
                ap = aps[t]
                row[f"{t}_AP"] = None if ap is None or math.isnan(ap[k]) else float(ap[k])
            rows.append(row)
        return {"categories": rows}

    def table(self) -> str:
        """The metrics as a small fixed-width table (percent), one row per IoU type."""
        lines = ["       " + "".join(f"{k:>7}" for k in METRIC_KEYS)]
        for t, r in self.by_type.items():
            values = [r.metrics[k] for k in METRIC_KEYS]
            lines.append(f"{t:<7}" + "".join(f"{'-':>7}" if v is None else f"{100 * v:7.2f}" for v in values))
        return "\n".join(lines)


def write_json(path: str | Path, content: dict[str, Any]) -> Path:
    """Write ``content`` as indented JSON (creating the folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a file
    return path


def write_metrics(result: EvaluationResult, path: str | Path) -> Path:
    """Write metrics.json: ``{"bbox": {...}, "segm": {...}, "eval": {"segm_area": ...}}``, metric values in
    [0, 1], null where undefined."""
    return write_json(path, result.metrics())


def write_per_category(result: EvaluationResult, path: str | Path) -> Path:
    """Write per_category.json: ``{"categories": [{id, name, frequency, image_count, bbox_AP, segm_AP}]}``."""
    return write_json(path, result.per_category())
