"""The whole commands the evaluation benchmark times: lvis-api alone and hotcoco alone on a results file, and the
small process that times a command.

    python -m gol.bench._eval_commands lvis|hotcoco ANN RESULTS OUT
    python -m gol.bench._eval_commands measure COMMAND...

``lvis`` and ``hotcoco`` evaluate bbox and segm as the library's documentation shows (300 detections per image)
and write ``{"bbox": {...}, "segm": {...}}`` with the 13 metrics, as ``gol-eval --out`` does. ``measure`` runs
COMMAND and prints its wall seconds and peak resident KiB: started from this small process, the command's peak is
its own (a child forked from the benchmark would count the benchmark's memory, the generated set included).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
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


def measure(command: Sequence[str]) -> int:
    """Run ``command`` (its output to this process's stderr) and print ``{"seconds", "max_rss_kib", "returncode"}``."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(command), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    sys.stdout.write(json.dumps({"seconds": seconds, "max_rss_kib": usage.ru_maxrss, "returncode": code}) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "measure":
        return measure(args[1:])
    which, ann, results, out = args
    metrics = {"lvis": lvis_api, "hotcoco": hotcoco}[which](ann, results)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(metrics, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
