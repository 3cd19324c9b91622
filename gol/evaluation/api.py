"""``evaluate``: LVIS bbox and segm evaluation with lvis-api semantics (hotcoco or lvis-api itself), under the
standard protocol (LVIS AP, 300 detections per image) and Dave et al.'s AP-fixed and AP-pool."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gol.evaluation.detections import Detections
from gol.evaluation.errors import EvaluationInputError
from gol.evaluation.ground_truth import GroundTruth, gc_paused
from gol.evaluation.prepare import cap_per_image, top_per_category
from gol.evaluation.result import DEFAULT_PROTOCOLS, PROTOCOLS, EvaluationResult, IouTypeResult
from gol.evaluation.summary import AP_KEYS, IOU_TYPES, MAX_DETS

log = logging.getLogger(__name__)

ENGINES = ("hotcoco", "lvis")
# hotcoco equals lvis-api on every metric and on the precision and recall arrays (tests/evaluation) and is the
# fastest exact evaluator measured (python -m gol.bench eval); "lvis" runs lvis-api itself, the reference.
DEFAULT_ENGINE = "hotcoco"
# Where a segm detection's area (for APs/APm/APl and the 0 < area filter) comes from. "box": its box's w * h, as
# lvis-api computes it for results that carry "bbox" (mmdetection 2.x writes segm results with their boxes, so the
# paper's numbers use it); "mask": the mask's pixel count, as lvis-api computes it for mask-only results
# (detectron2 drops "bbox" from segm results).
SEGM_AREAS = ("box", "mask")
DEFAULT_SEGM_AREA = "mask"
# AP-fixed and AP-pool keep the top 10,000 detections of each category over the set, with no per-image cap
# (Dave et al. 2021; large-vocab-devil's scripts/evaluate_ap_fixed.py and README).
DETS_PER_CATEGORY = 10_000

__all__ = [
    "DEFAULT_ENGINE",
    "DEFAULT_PROTOCOLS",
    "DEFAULT_SEGM_AREA",
    "DETS_PER_CATEGORY",
    "ENGINES",
    "MAX_DETS",
    "PROTOCOLS",
    "SEGM_AREAS",
    "check_options",
    "evaluate",
]


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_options(
    iou_types: Sequence[str],
    engine: str,
    max_dets: int,
    segm_area: str | None = DEFAULT_SEGM_AREA,
    protocols: Sequence[str] = DEFAULT_PROTOCOLS,
    dets_per_category: int = DETS_PER_CATEGORY,
    errors: bool = False,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Validate the evaluation options; returns the IoU types and the protocols as tuples."""
    types = tuple(iou_types)
    if not types or len(set(types)) != len(types) or not set(types) <= set(IOU_TYPES):
        raise EvaluationInputError(f"iou_types must be distinct entries of {list(IOU_TYPES)}, got {list(types)}")
    if engine not in ENGINES:
        raise EvaluationInputError(f"unknown evaluation engine {engine!r}; choose one of {list(ENGINES)}")
    if not (_positive_int(max_dets) or (isinstance(max_dets, int) and max_dets == -1)):
        raise EvaluationInputError(
            f"max_dets must be a positive integer (LVIS uses 300) or -1 for no cap, got {max_dets!r}"
        )
    if segm_area is not None and segm_area not in SEGM_AREAS:
        raise EvaluationInputError(
            f"unknown segm_area {segm_area!r}; choose 'box' (box w*h, as lvis-api with boxes in segm results, "
            "mmdetection) or 'mask' (mask area, detectron2)"
        )
    chosen = tuple(protocols)
    if not chosen or len(set(chosen)) != len(chosen) or not set(chosen) <= set(PROTOCOLS):
        raise EvaluationInputError(
            f"protocols must be distinct entries of {list(PROTOCOLS)} (standard: LVIS AP, 300 per image; fixed: "
            f"AP-fixed; pooled: AP-pool), got {list(chosen)}"
        )
    if not _positive_int(dets_per_category):
        raise EvaluationInputError(
            f"dets_per_category must be a positive integer (AP-fixed uses 10000), got {dets_per_category!r}"
        )
    if errors and engine != "hotcoco":
        raise EvaluationInputError("the error breakdown (TIDE) comes from hotcoco: evaluate with engine 'hotcoco'")
    return types, tuple(p for p in PROTOCOLS if p in chosen)


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
    protocols: Sequence[str] = DEFAULT_PROTOCOLS,
    dets_per_category: int = DETS_PER_CATEGORY,
    errors: bool = False,
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
        engine: "hotcoco" (hotcoco's LVIS evaluation on the set lvis-api evaluates) or "lvis" (lvis-api itself).
        max_dets: detections kept per image (LVIS: 300); -1 keeps all. The standard protocol only.
        segm_area: "mask" (mask areas, detectron2's segm results without ``bbox``), "box" (box ``w * h``, lvis-api
            on segm results with ``bbox``, as mmdetection writes them; needs boxes), or None: as lvis-api does on
            ``results`` as given (box areas if they carry ``bbox``, else mask areas).
        protocols: any of "standard" (LVIS AP), "fixed" (AP-fixed: the top ``dets_per_category`` detections of
            each category over the set, no per-image cap) and "pooled" (AP-pool: the same detections, precision
            pooled over all categories and over each frequency group).
        dets_per_category: AP-fixed and AP-pool's detections per category (Dave et al.: 10,000).
        errors: also break AP50 down by error type per frequency group (TIDE, :mod:`gol.evaluation.tide`) on the
            standard protocol's detections; hotcoco engine only.

    Returns:
        An :class:`EvaluationResult`; an empty result set gives AP 0 wherever there is ground truth (with a warning).
    """
    types, chosen = check_options(iou_types, engine, max_dets, segm_area, protocols, dets_per_category, errors)
    with gc_paused():  # LVIS-sized inputs are hundreds of thousands of acyclic objects
        return _evaluate(annotations, results, types, engine, max_dets, segm_area, chosen, dets_per_category, errors)


def _evaluate(
    annotations: str | Path | GroundTruth,
    results: str | Path | list[dict[str, Any]] | Detections,
    types: tuple[str, ...],
    engine: str,
    max_dets: int,
    segm_area: str | None,
    chosen: tuple[str, ...],
    dets_per_category: int,
    errors: bool,
) -> EvaluationResult:
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
    reason = gt.reference_only() if engine == "hotcoco" else None
    if reason is not None:
        log.info("evaluated by lvis-api itself (engine 'lvis'), which alone reads this file exactly: %s", reason)
        engine = "lvis"
    run = _Run(gt, dets, types, engine, area or DEFAULT_SEGM_AREA)
    by_type, fixed, pooled, breakdown = {}, {}, {}, {}
    capped = cap_per_image(image_index, dets.scores, max_dets)
    if "standard" in chosen:
        by_type = {t: run.standard(t, capped, max_dets) for t in types}
    if errors and engine == "hotcoco":
        breakdown = {t: run.errors(t, capped) for t in types}
    elif errors:
        log.warning("no error breakdown: it comes from hotcoco, and lvis-api itself evaluated this file")
    if {"fixed", "pooled"} & set(chosen):
        top = top_per_category(category_index, dets.scores, dets_per_category)
        _warn_short_categories(category_index, dets_per_category)
        if "fixed" in chosen:
            fixed = {t: _ap_only(run.standard(t, top, -1)) for t in types}
        if "pooled" in chosen:
            pooled = {t: run.pooled(t, top) for t in types}
    return EvaluationResult(
        engine=engine, categories=gt.categories, by_type=by_type, segm_area=area, fixed=fixed, pooled=pooled,
        protocols=chosen, dets_per_category=dets_per_category if chosen != DEFAULT_PROTOCOLS else None,
        errors=breakdown,
    )  # fmt: skip


class _Run:
    """One evaluation's engine, ground truth and detections; the hotcoco dataset is built once and shared."""

    def __init__(self, gt: GroundTruth, dets: Detections, types: tuple[str, ...], engine: str, segm_area: str) -> None:
        self.gt, self.dets, self.types, self.engine, self.segm_area = gt, dets, types, engine, segm_area
        self._sets: Any = None

    def _hotcoco(self) -> Any:
        """The hotcoco result sets of this evaluation (its ground truth loaded once)."""
        if self._sets is None:
            from gol.evaluation.hotcoco_engine import ResultSets, ground_truth

            self._sets = ResultSets(ground_truth(self.gt), self.dets, self.types, self.segm_area)
        return self._sets

    def standard(self, iou_type: str, kept: np.ndarray, max_dets: int) -> IouTypeResult:
        """LVIS AP of the detections ``kept`` (already limited; ``max_dets`` names the recall metrics)."""
        if self.engine == "lvis":
            from gol.evaluation.lvis_engine import evaluate_lvis

            # lvis-api applies its own cap to the given detections, as it does to a results file.
            dets = self.dets if max_dets > 0 else self.dets.subset(kept)
            return evaluate_lvis(self.gt, dets, iou_type, max_dets=max_dets, segm_area=self.segm_area)
        from gol.evaluation.hotcoco_engine import evaluate_hotcoco

        return evaluate_hotcoco(self._hotcoco(), self.gt, kept, iou_type, max_dets=max_dets)

    def errors(self, iou_type: str, kept: np.ndarray) -> dict[str, dict[str, float]]:
        """The TIDE breakdown per frequency group of the detections ``kept`` (hotcoco)."""
        from gol.evaluation.tide import error_breakdown

        sets = self._hotcoco()
        return error_breakdown(lambda: sets.evaluator(kept, iou_type), self.gt)

    def pooled(self, iou_type: str, kept: np.ndarray) -> dict[str, float | None]:
        if self.engine == "lvis":
            from gol.evaluation.lvis_engine import evaluate_pooled_lvis

            return evaluate_pooled_lvis(self.gt, self.dets.subset(kept), iou_type, segm_area=self.segm_area)
        from gol.evaluation.hotcoco_engine import evaluate_pooled_hotcoco

        return evaluate_pooled_hotcoco(self._hotcoco(), self.gt, kept, iou_type)


def _ap_only(result: IouTypeResult) -> IouTypeResult:
    """AP-fixed reports the 9 APs (its reference script reports no recall)."""
    metrics = {k: result.metrics[k] for k in AP_KEYS}
    return IouTypeResult(result.iou_type, metrics, result.precision, result.recall)


def _warn_short_categories(category_index: np.ndarray, k: int) -> None:
    """One warning, as the reference script gives, when categories with detections have fewer than ``k``."""
    counts = np.bincount(category_index)
    short = int(np.count_nonzero((counts > 0) & (counts < k)))
    if short:
        log.warning(
            "%d of %d categories with detections have fewer than %d detections, so AP-fixed and AP-pool count "
            "their missing detections as misses; keep %d per category at inference (eval.infer_topk=%d)",
            short, int(np.count_nonzero(counts)), k, k, k,
        )  # fmt: skip
