"""What an evaluation returns, and its files: ``metrics.json`` and ``per_category.json`` of the run record.

Shape shorthand: T = 10 IoU thresholds, R = 101 recall thresholds, K = categories (sorted by id), A = 4 areas.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gol.evaluation.ground_truth import Category
from gol.evaluation.summary import IOU_TYPES, METRIC_KEYS, category_ap
from gol.files import atomic_write

EVAL_BLOCK = "eval"  # metrics.json's block of evaluation settings that change the numbers (beside the IoU types)
PROTOCOLS = ("standard", "fixed", "pooled")
DEFAULT_PROTOCOLS = ("standard",)


def errors_block(iou_type: str, group: str) -> str:
    """metrics.json's block of one IoU type's TIDE breakdown for one group: ``segm_errors_all``, ``segm_errors_r``."""
    return f"{iou_type}_errors_{group}"


def block_name(iou_type: str, protocol: str) -> str:
    """metrics.json's block of one IoU type under one protocol: ``segm``, ``segm_fixed``, ``segm_pooled``."""
    return iou_type if protocol == "standard" else f"{iou_type}_{protocol}"


@dataclass(frozen=True, eq=False)
class IouTypeResult:
    """One IoU type's outcome: lvis-api's metrics (None where it gives -1), precision (T, R, K, A) and recall
    (T, K, A) arrays in lvis-api's layout (-1 where undefined)."""

    iou_type: str
    metrics: dict[str, float | None]
    precision: np.ndarray
    recall: np.ndarray

    def category_ap(self) -> np.ndarray:
        """(K,) float64 per-category AP (NaN where the category has no ground truth)."""
        return category_ap(self.precision)


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Per-IoU-type results of each protocol, the categories (sorted by id) that index their K axis, and the
    settings that change the numbers: where segm detections' areas came from (``segm_area`` "box" or "mask"; None
    when segm was not evaluated), the protocols, and AP-fixed/AP-pool's detections per category.

    ``by_type`` holds the standard protocol (LVIS AP, 300 per image), ``fixed`` AP-fixed (9 AP metrics), ``pooled``
    AP-pool (AP over all categories and APr/APc/APf over each frequency group, pooled).
    """

    engine: str
    categories: tuple[Category, ...]
    by_type: dict[str, IouTypeResult]
    segm_area: str | None = None
    fixed: dict[str, IouTypeResult] = field(default_factory=dict)
    pooled: dict[str, dict[str, float | None]] = field(default_factory=dict)
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    dets_per_category: int | None = None
    errors: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def blocks(self) -> dict[str, dict[str, float | None]]:
        """Every evaluated block's metrics: ``bbox``, ``segm``, ``bbox_fixed``, ..., ``segm_pooled``."""
        out: dict[str, dict[str, float | None]] = {t: dict(r.metrics) for t, r in self.by_type.items()}
        out.update({block_name(t, "fixed"): dict(r.metrics) for t, r in self.fixed.items()})
        out.update({block_name(t, "pooled"): dict(m) for t, m in self.pooled.items()})
        for t, groups in self.errors.items():
            out.update({errors_block(t, g): dict(m) for g, m in groups.items()})
        return out

    def metrics(self) -> dict[str, dict[str, Any]]:
        """metrics.json's content: ``{"bbox": {"AP": ..., ...}, "segm": {...}, "eval": {"segm_area": "mask"}}``
        (the evaluated IoU types; the ``eval`` block, which names the segm area convention, only with segm), plus
        ``<type>_fixed`` / ``<type>_pooled`` blocks and ``eval.protocols`` when other protocols were asked for."""
        content: dict[str, dict[str, Any]] = dict(self.blocks())
        settings: dict[str, Any] = {}
        if self.segm_area is not None:
            settings["segm_area"] = self.segm_area
        if self.protocols != DEFAULT_PROTOCOLS:
            settings["protocols"] = list(self.protocols)
            if self.dets_per_category is not None:
                settings["dets_per_category"] = self.dets_per_category
        if settings:
            content[EVAL_BLOCK] = settings
        return content

    def per_category(self) -> dict[str, list[dict[str, Any]]]:
        """per_category.json's content: id, name, frequency, image_count, bbox_AP, segm_AP (None if undefined);
        the standard protocol's APs, or AP-fixed's when only that was evaluated."""
        source = self.by_type or self.fixed
        aps = {t: source[t].category_ap() if t in source else None for t in IOU_TYPES}
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
        """The metrics as a small fixed-width table (percent), one row per block (IoU type and protocol)."""
        blocks = self.blocks()
        breakdown = {name: blocks.pop(name) for name in list(blocks) if "_errors_" in name}
        lines = []
        for rows, keys in ((blocks, list(next((r.metrics for r in self.by_type.values()), METRIC_KEYS))),
                           (breakdown, list(next(iter(breakdown.values()), {})))):  # fmt: skip
            if not rows:
                continue
            width = max(len(b) for b in [*rows, "bbox"]) + 1
            lines.append(" " * width + "".join(f"{k:>8}" for k in keys))
            for name, metrics in rows.items():
                values = [metrics.get(k) for k in keys]
                lines.append(
                    f"{name:<{width}}" + "".join(f"{'-':>8}" if v is None else f"{100 * v:8.2f}" for v in values)
                )
        return "\n".join(lines)


def write_json(path: str | Path, content: dict[str, Any]) -> Path:
    """Write ``content`` as indented JSON (creating the folder, atomically: a reader never sees half a file)."""
    path = Path(path)
    atomic_write(path, lambda f: f.write(json.dumps(content, indent=2) + "\n"))
    return path


def write_metrics(result: EvaluationResult, path: str | Path) -> Path:
    """Write metrics.json: ``{"bbox": {...}, "segm": {...}, "eval": {"segm_area": ...}}``, metric values in
    [0, 1], null where undefined."""
    return write_json(path, result.metrics())


def write_per_category(result: EvaluationResult, path: str | Path) -> Path:
    """Write per_category.json: ``{"categories": [{id, name, frequency, image_count, bbox_AP, segm_AP}]}``."""
    return write_json(path, result.per_category())
