"""LVIS evaluation with lvis-api's semantics: bbox and segm AP/AR, APr/APc/APf, per-category AP, AP-fixed, AP-pool.

Two engines give the same numbers: "hotcoco" (the default) runs hotcoco's LVIS evaluation on exactly the
detections and annotations lvis-api evaluates, "lvis" runs the official lvis-api (through ``gol.lvis_compat``).
Typical use during training::

    gt = GroundTruth.load(data.val_annotation_file)            # once
    dets = Detections.concatenate([detections_from_output(o, image_id=i, category_ids=stats.category_ids)
                                   for o, i in zip(outputs, image_ids)])
    result = evaluate(gt, dets, iou_types=cfg.eval.iou_types, engine=cfg.eval.engine, max_dets=cfg.eval.max_dets,
                      segm_area=cfg.eval.segm_area, protocols=cfg.eval.protocols)
    write_metrics(result, run_dir / "metrics.json"); write_per_category(result, run_dir / "per_category.json")
"""

from gol.evaluation.api import (
    DEFAULT_ENGINE,
    DEFAULT_SEGM_AREA,
    DETS_PER_CATEGORY,
    ENGINES,
    MAX_DETS,
    PROTOCOLS,
    SEGM_AREAS,
    evaluate,
)
from gol.evaluation.detections import Detections
from gol.evaluation.errors import EvaluationInputError
from gol.evaluation.ground_truth import Category, GroundTruth
from gol.evaluation.result import (
    EvaluationResult,
    IouTypeResult,
    write_metrics,
    write_per_category,
)
from gol.evaluation.rles import RLEs
from gol.evaluation.summary import IOU_TYPES, METRIC_KEYS

_TORCH_HELPERS = ("detections_from_output", "encode_box_masks", "encode_masks", "outputs_to_results")


def __getattr__(name: str) -> object:
    # The torchvision-output helpers import torch; loading them on first use keeps `gol-eval` quick to start.
    if name in _TORCH_HELPERS:
        from gol.evaluation import convert

        return getattr(convert, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_ENGINE",
    "DEFAULT_SEGM_AREA",
    "DETS_PER_CATEGORY",
    "ENGINES",
    "IOU_TYPES",
    "MAX_DETS",
    "METRIC_KEYS",
    "PROTOCOLS",
    "SEGM_AREAS",
    "Category",
    "Detections",
    "EvaluationInputError",
    "EvaluationResult",
    "GroundTruth",
    "IouTypeResult",
    "RLEs",
    "detections_from_output",
    "encode_box_masks",
    "encode_masks",
    "evaluate",
    "outputs_to_results",
    "write_metrics",
    "write_per_category",
]
