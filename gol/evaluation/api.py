"""``evaluate``: LVIS bbox and segm evaluation with lvis-api semantics, by the official or the fast engine."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from gol.evaluation.detections import Detections
from gol.evaluation.errors import EvaluationInputError
from gol.evaluation.ground_truth import GroundTruth
from gol.evaluation.result import EvaluationResult, IouTypeResult
from gol.evaluation.summary import IOU_TYPES

log = logging.getLogger(__name__)

ENGINES = ("lvis", "fast")
DEFAULT_ENGINE = "fast"  # equals lvis-api bit for bit in tests/evaluation; "lvis" stays the reference
MAX_DETS = 300  # LVIS's per-image detection cap (LVISResults' max_dets)


def check_options(iou_types: Sequence[str], engine: str, max_dets: int) -> tuple[str, ...]:
    """Validate the evaluation options; returns the IoU types as a tuple."""
    types = tuple(iou_types)
    if not types or len(set(types)) != len(types) or not set(types) <= set(IOU_TYPES):
        raise EvaluationInputError(f"iou_types must be distinct entries of {list(IOU_TYPES)}, got {list(types)}")
    if engine not in ENGINES:
        raise EvaluationInputError(f"unknown evaluation engine {engine!r}; choose one of {list(ENGINES)}")
    if isinstance(max_dets, bool) or not isinstance(max_dets, int) or not (max_dets >= 1 or max_dets == -1):
        raise EvaluationInputError(
            f"max_dets must be a positive integer (LVIS uses 300) or -1 for no cap, got {max_dets!r}"
        )
    return types


def evaluate(
    annotations: str | Path | GroundTruth,
    results: str | Path | list[dict[str, Any]] | Detections,
    *,
    iou_types: Sequence[str] = IOU_TYPES,
    engine: str = DEFAULT_ENGINE,
    max_dets: int = MAX_DETS,
) -> EvaluationResult:
    """Evaluate detections on an LVIS-format dataset with lvis-api's semantics.

    Federated categories (detections of categories neither annotated nor in an image's ``neg_category_ids``
    are dropped), unmatched detections of ``not_exhaustive_category_ids`` ignored, the top ``max_dets``
    detections per image kept across categories, and segm results without ``bbox`` so mask areas come from
    the masks (detectron2's practice).

    Args:
        annotations: the LVIS annotation file, or a :class:`GroundTruth` loaded from it (reuse it across calls).
        results: an LVIS results JSON file, a list of result dicts, or in-memory :class:`Detections`.
        iou_types: any of "bbox", "segm".
        engine: "lvis" (the official lvis-api) or "fast" (the same numbers, vectorised).
        max_dets: detections kept per image (LVIS: 300); -1 keeps all.

    Returns:
        An :class:`EvaluationResult`; an empty result set gives AP 0 wherever there is ground truth (with a warning).
    """
    types = check_options(iou_types, engine, max_dets)
    gt = annotations if isinstance(annotations, GroundTruth) else GroundTruth.load(annotations)
    if isinstance(results, Detections):
        dets = results
    elif isinstance(results, (str, Path)):
        dets = Detections.load(results, iou_types=types)
    else:
        dets = Detections.from_results(results, iou_types=types)
    image_index, category_index = dets.check(gt, types)
    gt.require(types)
    if not len(dets):
        log.warning(
            "no detections to evaluate: AP is 0 for every category with ground truth (as lvis-api "
            "computes it when no detection survives)"
        )
    if engine == "lvis":
        from gol.evaluation.lvis_engine import evaluate_lvis

        by_type = {t: evaluate_lvis(gt, dets, t, max_dets=max_dets) for t in types}
    else:
        by_type = _evaluate_fast(gt, dets, image_index, category_index, types, max_dets)
    return EvaluationResult(engine=engine, categories=gt.categories, by_type=by_type)


def _evaluate_fast(
    gt: GroundTruth,
    dets: Detections,
    image_index: np.ndarray,
    category_index: np.ndarray,
    types: tuple[str, ...],
    max_dets: int,
) -> dict[str, IouTypeResult]:
    from gol.evaluation.fast_engine import FastEvaluator

    evaluator = FastEvaluator(gt, dets, image_index, category_index, max_dets=max_dets)
    if len(types) == 1:
        return {types[0]: evaluator.run(types[0])}
    # bbox and segm concurrently: NumPy releases the GIL in its array work, so one type's array work overlaps the
    # other's pycocotools calls (full set of gol/bench/eval.py, 2 cores: 2.1 s instead of 2.8 s one after the other).
    with ThreadPoolExecutor(max_workers=len(types), thread_name_prefix="gol-eval") as pool:
        return dict(zip(types, pool.map(evaluator.run, types)))
