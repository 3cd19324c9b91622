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
# Where a segm detection's area (for APs/APm/APl and the 0 < area filter) comes from. "box": its box's w * h, as
# lvis-api computes it for results that carry "bbox" (mmdetection 2.x writes segm results with their boxes, so the
# paper's numbers use it); "mask": the mask's pixel count, as lvis-api computes it for mask-only results
# (detectron2 drops "bbox" from segm results).
SEGM_AREAS = ("box", "mask")
DEFAULT_SEGM_AREA = "mask"


def check_options(
    iou_types: Sequence[str], engine: str, max_dets: int, segm_area: str | None = DEFAULT_SEGM_AREA
) -> tuple[str, ...]:
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
    if segm_area is not None and segm_area not in SEGM_AREAS:
        raise EvaluationInputError(
            f"unknown segm_area {segm_area!r}; choose 'box' (box w*h, as lvis-api with boxes in segm results, "
            "mmdetection) or 'mask' (mask area, detectron2)"
        )
    return types


def resolve_segm_area(segm_area: str | None, dets: Detections) -> str:
    """The area convention segm evaluation uses: ``segm_area``, or for None what lvis-api does on ``dets`` as they
    are (box areas if they carry boxes, else mask areas). "box" needs boxes."""
    if segm_area is None:
        return "box" if dets.boxes is not None else "mask"
    if segm_area == "box" and dets.boxes is None:
        raise EvaluationInputError(
            "segm_area='box' takes segm areas from the detections' boxes, but they carry no 'bbox'; give boxes "
            "or use segm_area='mask'"
        )
    return segm_area


def evaluate(
    annotations: str | Path | GroundTruth,
    results: str | Path | list[dict[str, Any]] | Detections,
    *,
    iou_types: Sequence[str] = IOU_TYPES,
    engine: str = DEFAULT_ENGINE,
    max_dets: int = MAX_DETS,
    segm_area: str | None = DEFAULT_SEGM_AREA,
) -> EvaluationResult:
    """Evaluate detections on an LVIS-format dataset with lvis-api's semantics.

    Federated categories (detections of categories neither annotated nor in an image's ``neg_category_ids``
    are dropped), unmatched detections of ``not_exhaustive_category_ids`` ignored, the top ``max_dets``
    detections per image kept across categories. segm detections are assigned to the area ranges (APs/APm/APl)
    by their mask area or their box area, as ``segm_area`` says.

    Args:
        annotations: the LVIS annotation file, or a :class:`GroundTruth` loaded from it (reuse it across calls).
        results: an LVIS results JSON file, a list of result dicts, or in-memory :class:`Detections`.
        iou_types: any of "bbox", "segm".
        engine: "lvis" (the official lvis-api) or "fast" (the same numbers, vectorised).
        max_dets: detections kept per image (LVIS: 300); -1 keeps all.
        segm_area: "mask" (mask areas, detectron2's segm results without ``bbox``), "box" (box ``w * h``, lvis-api
            on segm results with ``bbox``, as mmdetection writes them; needs boxes), or None: as lvis-api does on
            ``results`` as given (box areas if they carry ``bbox``, else mask areas).

    Returns:
        An :class:`EvaluationResult`; an empty result set gives AP 0 wherever there is ground truth (with a warning).
    """
    types = check_options(iou_types, engine, max_dets, segm_area)
    gt = annotations if isinstance(annotations, GroundTruth) else GroundTruth.load(annotations)
    if isinstance(results, Detections):
        dets = results
    elif isinstance(results, (str, Path)):
        dets = Detections.load(results, iou_types=types, segm_area=segm_area)
    else:
        dets = Detections.from_results(results, iou_types=types, segm_area=segm_area)
    image_index, category_index = dets.check(gt, types)
    area = resolve_segm_area(segm_area, dets) if "segm" in types else None  # None: not evaluated
    gt.require(types)
    if not len(dets):
        log.warning(
            "no detections to evaluate: AP is 0 for every category with ground truth (as lvis-api "
            "computes it when no detection survives)"
        )
    if engine == "lvis":
        from gol.evaluation.lvis_engine import evaluate_lvis

        by_type = {t: evaluate_lvis(gt, dets, t, max_dets=max_dets, segm_area=area or DEFAULT_SEGM_AREA) for t in types}
    else:
        by_type = _evaluate_fast(gt, dets, image_index, category_index, types, max_dets, area or DEFAULT_SEGM_AREA)
    return EvaluationResult(engine=engine, categories=gt.categories, by_type=by_type, segm_area=area)


def _evaluate_fast(
    gt: GroundTruth,
    dets: Detections,
    image_index: np.ndarray,
    category_index: np.ndarray,
    types: tuple[str, ...],
    max_dets: int,
    segm_area: str,
) -> dict[str, IouTypeResult]:
    from gol.evaluation.fast_engine import FastEvaluator

    evaluator = FastEvaluator(gt, dets, image_index, category_index, max_dets=max_dets, segm_area=segm_area)
    if len(types) == 1:
        return {types[0]: evaluator.run(types[0])}
    # bbox and segm concurrently: NumPy releases the GIL in its array work, so one type's array work overlaps the
    # other's pycocotools calls (full set of gol/bench/eval.py, 2 cores: 2.1 s instead of 2.8 s one after the other).
    with ThreadPoolExecutor(max_workers=len(types), thread_name_prefix="gol-eval") as pool:
        return dict(zip(types, pool.map(evaluator.run, types)))
