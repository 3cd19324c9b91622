"""The reference engine: the official lvis-api (``LVISResults`` + ``LVISEval``), used as detectron2 uses it."""

from __future__ import annotations

import logging
from typing import Any

import pycocotools.mask as mask_utils

from gol.evaluation.detections import Detections
from gol.evaluation.ground_truth import GroundTruth
from gol.evaluation.pooled import LVIS_FIELDS, pooled_metrics, records_from_eval_imgs
from gol.evaluation.result import IouTypeResult
from gol.evaluation.summary import metric_keys, metrics_from_lvis
from gol.lvis_compat import LVIS, LVISEval, LVISResults

log = logging.getLogger(__name__)


def lvis_results(dets: Detections, gt: GroundTruth, iou_type: str, *, segm_area: str = "mask") -> list[dict[str, Any]]:
    """The result dicts lvis-api gets for ``iou_type``.

    ``LVISResults`` takes every detection's area (APs/APm/APl) from its ``bbox`` (w * h) when the results carry
    one, else from its mask. So segm results carry their boxes for ``segm_area="box"`` (as mmdetection writes
    them) and none for "mask" (as detectron2's LVISEvaluator). bbox results carry the box only (or, for mask-only
    results, the mask, from which lvis-api derives box and area).
    """
    if not len(dets):
        return [_dropped_detection(gt, iou_type)]
    if iou_type == "segm":
        return dets.to_results(boxes=segm_area == "box")
    return dets.to_results(masks=dets.boxes is None)


def _dropped_detection(gt: GroundTruth, iou_type: str) -> dict[str, Any]:
    """A zero-area detection: lvis-api's ``get_ann_ids`` keeps only area > 0, so it is never evaluated.

    lvis-api 0.5.3 raises IndexError on an empty result list (``LVISResults`` reads ``result_anns[0]``); an
    evaluation whose detections are all dropped is the same evaluation, so this gives lvis-api's own answer
    for "no detections" (precision 0 wherever there is ground truth).
    """
    det: dict[str, Any] = {"image_id": int(gt.image_ids[0]), "category_id": int(gt.category_ids[0]), "score": 0.0}
    if iou_type == "segm":
        h, w = int(gt.heights[0]), int(gt.widths[0])
        empty = mask_utils.frPyObjects({"size": [h, w], "counts": [h * w]}, h, w)  # one run of h*w zeros
        det["segmentation"] = {"size": [h, w], "counts": empty["counts"].decode("ascii")}
    else:
        det["bbox"] = [0.0, 0.0, 0.0, 0.0]
    return det


def _lvis_eval(gt: GroundTruth, dets: Detections, iou_type: str, max_dets: int, segm_area: str) -> Any:
    lvis_gt = LVIS(str(gt.path))  # fresh: LVISEval converts the annotations' segmentations in place
    results = lvis_results(dets, gt, iou_type, segm_area=segm_area)
    lvis_eval = LVISEval(lvis_gt, LVISResults(lvis_gt, results, max_dets=max_dets), iou_type=iou_type)
    lvis_eval.params.max_dets = max_dets  # only names the recall metrics (AR@300), as detectron2's max_dets option
    return lvis_eval


def evaluate_lvis(
    gt: GroundTruth, dets: Detections, iou_type: str, *, max_dets: int, segm_area: str = "mask"
) -> IouTypeResult:
    """Run lvis-api's evaluation of ``iou_type`` on ``dets`` (already checked against ``gt``); segm detections'
    areas from their boxes or masks as ``segm_area`` ("box" needs boxes) says."""
    lvis_eval = _lvis_eval(gt, dets, iou_type, max_dets, segm_area)
    lvis_eval.run()
    return IouTypeResult(
        iou_type=iou_type,
        metrics=metrics_from_lvis(lvis_eval.results, metric_keys(max_dets)),
        precision=lvis_eval.eval["precision"],
        recall=lvis_eval.eval["recall"],
    )


def evaluate_pooled_lvis(
    gt: GroundTruth, dets: Detections, iou_type: str, *, segm_area: str = "mask"
) -> dict[str, float | None]:
    """AP-pool of ``iou_type`` from lvis-api's own per-image matching of ``dets`` (no per-image cap)."""
    lvis_eval = _lvis_eval(gt, dets, iou_type, -1, segm_area)
    params = lvis_eval.params
    params.area_rng, params.area_rng_lbl = [params.area_rng[0]], [params.area_rng_lbl[0]]  # "all" only
    lvis_eval.evaluate()
    records = records_from_eval_imgs(
        lvis_eval.eval_imgs, LVIS_FIELDS, gt.image_ids, gt.category_ids, len(params.iou_thrs)
    )
    return pooled_metrics(records, gt.frequency_groups(), gt.num_categories, len(params.iou_thrs))
