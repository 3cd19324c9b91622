"""The default engine: hotcoco's LVIS evaluation (Rust; ``hotcoco.LVISeval``) on the detections lvis-api evaluates.

hotcoco equals lvis-api on the matching and accumulation of every set in tests/evaluation; where the two read a
file differently, gol prepares the set itself (:mod:`gol.evaluation.prepare`) and hands hotcoco exactly the
detections and annotations lvis-api evaluates:

- the per-image cap (or AP-fixed's per-category top k) is applied here, so hotcoco applies none;
- detections and annotations with area 0 (lvis-api's ``get_ann_ids`` keeps ``0 < area < inf``) are left out,
  where hotcoco would evaluate them;
- each detection's area is set to the one lvis-api derives (box or mask, see ``prepare.areas``).

Files with lvis-api's optional per-annotation ``ignore`` flag, or an annotation id 0 (which lvis-api's matcher
never counts as a true positive), are evaluated by the reference engine instead: hotcoco reads neither as lvis-api
does (:meth:`GroundTruth.reference_only`).

Shape shorthand: M = detections evaluated, T = 10 IoU thresholds, R = 101 recall thresholds, K = categories,
A = 4 area ranges.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import numpy as np

from gol.evaluation.detections import Detections
from gol.evaluation.ground_truth import GroundTruth, load_json
from gol.evaluation.pooled import HOTCOCO_FIELDS, pooled_metrics, records_from_eval_imgs
from gol.evaluation.prepare import areas, evaluated
from gol.evaluation.result import IouTypeResult
from gol.evaluation.summary import IOU_THRESHOLDS, summarize


def quietly(step: Any) -> None:
    """Run an evaluator step without hotcoco's printed summary, nor its note that ``max_dets`` is not [300] (gol
    lifts it on purpose, see ``ResultSets._lvis_eval``)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="hotcoco: max_dets differ", category=UserWarning)
        step()


def _hotcoco() -> Any:
    import hotcoco  # the Rust extension loads on first use: `gol-eval --help` stays quick

    return hotcoco


def ground_truth(gt: GroundTruth) -> Any:
    """hotcoco's dataset of the annotations lvis-api evaluates: the file itself when every annotation has
    ``0 < area < inf``, else the file without the others."""
    hotcoco = _hotcoco()
    if gt.all_annotations_evaluated:
        return hotcoco.COCO(str(gt.path))
    data = load_json(gt.path, "annotation")
    kept = set(gt.ann_id.tolist())
    data["annotations"] = [a for a in data["annotations"] if a["id"] in kept]
    return hotcoco.COCO(data)


class ResultSets:
    """hotcoco result sets of one evaluation, built once and shared: bbox and segm evaluate the same set whenever
    lvis-api would evaluate the same detections with the same areas for both (segm areas from boxes, or a results
    file without boxes), which saves one load of every detection."""

    def __init__(self, hotcoco_gt: Any, dets: Detections, iou_types: tuple[str, ...], segm_area: str) -> None:
        self.hotcoco_gt, self.dets, self.segm_area = hotcoco_gt, dets, segm_area
        self.boxes = "bbox" in iou_types  # give the sets boxes (from the masks for mask-only results)
        self.masks = "segm" in iou_types and dets.segmentations is not None
        self._built: list[tuple[np.ndarray, np.ndarray, np.ndarray, Any]] = []

    def evaluator(self, kept: np.ndarray, iou_type: str) -> Any:
        """hotcoco's LVISeval of ``iou_type`` on the detections ``kept`` (already capped)."""
        area = areas(self.dets, kept, iou_type, self.segm_area)
        keep = evaluated(area)
        rows, area = kept[keep], area[keep]  # (M,), (M,)
        for seen_kept, seen_rows, seen_area, seen in self._built:
            if seen_kept is kept and np.array_equal(seen_rows, rows) and np.array_equal(seen_area, area):
                return self._lvis_eval(seen, iou_type, rows.size)
        result = self._load(rows, area)
        self._built.append((kept, rows, area, result))
        return self._lvis_eval(result, iou_type, rows.size)

    def _lvis_eval(self, result: Any, iou_type: str, count: int) -> Any:
        """LVISeval of ``result`` that keeps every detection of an (image, category): hotcoco otherwise keeps its
        ``params.max_dets`` (300) best there, which lvis-api never does (AP-fixed and AP-pool have thousands)."""
        evaluator = _hotcoco().LVISeval(self.hotcoco_gt, result, iou_type)
        params = evaluator.params
        params.max_dets = [max(1, count)]
        evaluator.params = params
        return evaluator

    def _load(self, rows: np.ndarray, area: np.ndarray) -> Any:
        """hotcoco's result set of detections ``rows`` (M,), in result order, with lvis-api's ``area`` (M,)."""
        dets = self.dets
        needed = self.masks or (dets.boxes is None and self.boxes)
        # pycocotools' dicts for these rows only, made now (bytes counts: hotcoco reads them as they are).
        masks = dets.segmentations.dicts(rows, text=False) if needed and dets.segmentations is not None else None
        if dets.boxes is not None:
            boxes = dets.boxes[rows]  # (M, 4)
        elif self.boxes and masks:  # mask-only results: lvis-api takes the boxes from the masks
            import pycocotools.mask as mask_utils

            boxes = mask_utils.toBbox(masks)
        else:
            boxes = np.zeros((rows.size, 4))  # not read: segm evaluation of mask-only results
        table = np.column_stack([dets.image_ids[rows], boxes, dets.scores[rows], dets.category_ids[rows]]).astype(
            np.float64
        )  # (M, 7): image_id, x, y, w, h, score, category_id
        with contextlib.redirect_stderr(io.StringIO()):  # its load warnings repeat checks gol already made
            result = self.hotcoco_gt.load_res(table, segmentation=masks if self.masks else None)
            result = result.cap_detections_per_image(None)  # the cap is applied already
        if rows.size:
            result.update_anns(ids=np.arange(1, rows.size + 1), area=area)
        return result


def evaluate_hotcoco(
    sets: ResultSets, gt: GroundTruth, kept: np.ndarray, iou_type: str, *, max_dets: int
) -> IouTypeResult:
    """Evaluate ``iou_type`` on the detections ``kept`` (already capped): lvis-api's metrics and arrays."""
    evaluator = sets.evaluator(kept, iou_type)
    quietly(evaluator.run)
    precision = np.asarray(evaluator.eval["precision"])[..., 0]  # (T, R, K, A)
    recall = np.asarray(evaluator.eval["recall"])[..., 0]  # (T, K, A)
    metrics = summarize(precision, recall, gt.frequency_groups(), max_dets)
    return IouTypeResult(iou_type, metrics, precision, recall)


def evaluate_pooled_hotcoco(
    sets: ResultSets, gt: GroundTruth, kept: np.ndarray, iou_type: str
) -> dict[str, float | None]:
    """AP-pool of ``iou_type`` on the detections ``kept`` (the per-category top k, no per-image cap)."""
    evaluator = sets.evaluator(kept, iou_type)
    params = evaluator.params
    params.area_rng, params.area_rng_lbl = [params.area_rng[0]], [params.area_rng_lbl[0]]  # "all" only
    evaluator.params = params
    quietly(evaluator.evaluate)
    records = records_from_eval_imgs(
        evaluator.eval_imgs, HOTCOCO_FIELDS, gt.image_ids, gt.category_ids, IOU_THRESHOLDS.size
    )
    return pooled_metrics(records, gt.frequency_groups(), gt.num_categories, IOU_THRESHOLDS.size)
