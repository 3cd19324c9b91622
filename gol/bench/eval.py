"""Benchmark: the fast LVIS evaluation engine against the official lvis-api, side by side in one process.

    python -m gol.bench.eval --size smoke|full [--json PATH]

Generates an LVIS-format set (full: 2000 images, 1203 categories, ~620k detections, ~600k after the cap of
300 per image), then times, per IoU type, lvis-api (``LVIS`` + ``LVISResults`` + ``LVISEval.run``, on result
dicts prepared beforehand) and the fast engine end to end (``evaluate(..., engine="fast")``: reading the
annotation file, checking the result dicts, evaluating). It also times the fast engine on preloaded data with
bbox and segm one after the other and in two threads, and reports the largest metric difference between the
engines and whether their precision arrays are identical. The full lvis-api run takes many minutes.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from gol.bench._report import add_json_option, write_json
from gol.evaluation import Detections, GroundTruth, evaluate
from gol.evaluation.fast_engine import FastEvaluator
from gol.evaluation.lvis_engine import lvis_results
from gol.evaluation.summary import IOU_TYPES, METRIC_KEYS, metrics_from_lvis
from gol.evaluation.synthetic import SyntheticSpec, make_lvis_set
from gol.lvis_compat import LVIS, LVISEval, LVISResults

log = logging.getLogger(__name__)

SIZES = {
    "smoke": SyntheticSpec(num_images=30, num_categories=60, dets_per_image=(290, 330), image_size=(48, 160), seed=0),
    "full": SyntheticSpec(
        num_images=2000, num_categories=1203, dets_per_image=(290, 330), image_size=(240, 480), seed=0
    ),
}


def _lvis_api(ann_file: Path, results: list[dict[str, Any]], iou_type: str) -> tuple[float, Any]:
    start = time.perf_counter()
    lvis_gt = LVIS(str(ann_file))
    lvis_eval = LVISEval(lvis_gt, LVISResults(lvis_gt, results, max_dets=300), iou_type=iou_type)
    lvis_eval.run()
    return time.perf_counter() - start, lvis_eval


def _max_difference(a: dict[str, float | None], b: dict[str, float | None]) -> float:
    diffs = [
        0.0 if a[k] is None and b[k] is None else float("inf") if a[k] is None or b[k] is None else abs(a[k] - b[k])  # type: ignore[operator]
        for k in METRIC_KEYS
    ]
    return max(diffs)


def run(size: str) -> dict[str, Any]:
    """Generate the ``size`` set, time both engines; returns the report as a dict."""
    spec = SIZES[size]
    gt_dict, results = make_lvis_set(spec)
    with tempfile.TemporaryDirectory() as tmp:
        ann_file = Path(tmp) / "annotations.json"
        ann_file.write_text(json.dumps(gt_dict), encoding="utf-8")
        gt = GroundTruth.load(ann_file)
        dets = Detections.from_results(results)
        report: dict[str, Any] = {
            "size": size,
            "images": spec.num_images,
            "categories": spec.num_categories,
            "detections": len(results),
            "annotations": len(gt_dict["annotations"]),
            "seconds": {"lvis": {}, "fast": {}},
            "ratio": {},
            "max_metric_difference": {},
            "precision_identical": {},
        }
        del gt_dict
        for iou_type in IOU_TYPES:
            start = time.perf_counter()
            fast = evaluate(ann_file, results, engine="fast", iou_types=[iou_type]).by_type[iou_type]
            fast_s = time.perf_counter() - start
            lvis_s, lvis_eval = _lvis_api(ann_file, lvis_results(dets, gt, iou_type), iou_type)
            log.info("%s: lvis-api %.2f s, fast %.2f s", iou_type, lvis_s, fast_s)
            report["seconds"]["lvis"][iou_type] = lvis_s
            report["seconds"]["fast"][iou_type] = fast_s
            report["ratio"][iou_type] = lvis_s / fast_s
            report["max_metric_difference"][iou_type] = _max_difference(
                metrics_from_lvis(lvis_eval.results), fast.metrics
            )
            report["precision_identical"][iou_type] = bool(
                np.array_equal(lvis_eval.eval["precision"], fast.precision)
                and np.array_equal(lvis_eval.eval["recall"], fast.recall)
            )
            del lvis_eval
        image_index, category_index = dets.check(gt, IOU_TYPES)
        evaluator = FastEvaluator(gt, dets, image_index, category_index, max_dets=300)
        report["detections_after_cap"] = int(evaluator.kept.size)
        start = time.perf_counter()
        for iou_type in IOU_TYPES:
            evaluator.run(iou_type)
        serial = time.perf_counter() - start
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(IOU_TYPES)) as pool:
            list(pool.map(evaluator.run, IOU_TYPES))
        threads = time.perf_counter() - start
        report["fast_preloaded_both_seconds"] = {"serial": serial, "two_threads": threads}
    return report


def format_report(report: dict[str, Any]) -> str:
    s, r = report["seconds"], report["ratio"]
    lines = [
        (
            f"set ({report['size']}): {report['images']} images, {report['categories']} categories, "
            f"{report['annotations']} annotations, {report['detections']} detections "
            f"({report['detections_after_cap']} after the cap of 300 per image)"
        ),
        f"{'':<10}{'bbox (s)':>10}{'segm (s)':>10}",
        f"{'lvis-api':<10}{s['lvis']['bbox']:>10.2f}{s['lvis']['segm']:>10.2f}",
        f"{'fast':<10}{s['fast']['bbox']:>10.2f}{s['fast']['segm']:>10.2f}",
        f"{'ratio':<10}{r['bbox']:>9.1f}x{r['segm']:>9.1f}x",
        "max |metric difference|: " + ", ".join(f"{t} {report['max_metric_difference'][t]:.3g}" for t in IOU_TYPES),
        "precision and recall arrays identical: "
        + ", ".join(f"{t} {'yes' if report['precision_identical'][t] else 'NO'}" for t in IOU_TYPES),
        "fast, preloaded, bbox then segm: {serial:.2f} s; in two threads: {two_threads:.2f} s".format(
            **report["fast_preloaded_both_seconds"]
        ),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gol.bench.eval", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="smoke")
    add_json_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("lvis").setLevel(logging.ERROR)  # lvis-api warns on every in-memory result list
    report = run(args.size)
    log.info("%s", format_report(report))
    write_json(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
