"""The whole commands the evaluation benchmark times: lvis-api alone and hotcoco alone on a results file.

    python -m gol.bench._eval_commands lvis|hotcoco ANN RESULTS OUT

Each evaluates bbox and segm as its library's documentation shows (300 detections per image) and writes
``{"bbox": {...}, "segm": {...}}`` with the 13 metrics, as ``gol-eval --out`` does.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Sequence
from typing import Any

IOU_TYPES = ("bbox", "segm")


def lvis_api(ann: str, results: str) -> dict[str, Any]:
    """lvis-api: ``LVIS`` once, then ``LVISResults`` + ``LVISEval`` per IoU type (detectron2's usage)."""
    from gol.lvis_compat import LVIS, LVISEval, LVISResults

    gt = LVIS(ann)
    out = {}
    for iou_type in IOU_TYPES:
        lvis_eval = LVISEval(gt, LVISResults(gt, results, max_dets=300), iou_type=iou_type)
        lvis_eval.run()
        out[iou_type] = {k: float(v) for k, v in lvis_eval.results.items()}
    return out


def hotcoco(ann: str, results: str) -> dict[str, Any]:
    """hotcoco: ``COCO`` and ``LVISResults`` (the file parsed once), then ``LVISeval`` per IoU type."""
    import hotcoco

    gt = hotcoco.COCO(ann)
    with contextlib.redirect_stderr(io.StringIO()):
        dt = hotcoco.LVISResults(gt, results, max_dets=300)
    out = {}
    for iou_type in IOU_TYPES:
        evaluator = hotcoco.LVISeval(gt, dt, iou_type)
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator.run()
        out[iou_type] = {k: float(v) for k, v in evaluator.get_results().items()}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    which, ann, results, out = list(sys.argv[1:] if argv is None else argv)
    metrics = {"lvis": lvis_api, "hotcoco": hotcoco}[which](ann, results)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(metrics, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
