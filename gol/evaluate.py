"""``gol-eval``: evaluate an LVIS results file, or the checkpoint of a run, with lvis-api's semantics.

gol-eval --ann GT.json --results DETS.json --out metrics.json [--per-category PATH]
         [--iou-types bbox segm] [--engine lvis|fast] [--max-dets 300] [--segm-area box|mask]
gol-eval --run RUN_DIR [--checkpoint PATH] [--out PATH]

A results file is evaluated as lvis-api evaluates it: segm detections' areas (APs/APm/APl) are their boxes' w*h
when the file's detections carry ``bbox``, else their masks'; ``--segm-area`` picks one convention instead. A
run's checkpoint is evaluated with its config's ``eval.segm_area``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from gol.evaluation.api import DEFAULT_ENGINE, ENGINES, MAX_DETS, SEGM_AREAS, evaluate
from gol.evaluation.errors import EvaluationInputError
from gol.evaluation.result import EVAL_BLOCK, write_metrics, write_per_category
from gol.evaluation.summary import IOU_TYPES

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gol-eval",
        description="LVIS bbox/segm evaluation (AP, AP50, AP75, APs, APm, APl, APr, APc, APf) with lvis-api semantics.",
    )
    files = parser.add_argument_group("evaluate a results file")
    files.add_argument("--ann", type=Path, help="LVIS-format annotation JSON (e.g. lvis_v1_val.json)")
    files.add_argument("--results", type=Path, help="LVIS results JSON: a list of detections in the dataset's ids")
    files.add_argument("--per-category", type=Path, default=None, help="also write per-category AP here")
    files.add_argument("--iou-types", nargs="+", choices=IOU_TYPES, default=list(IOU_TYPES))
    files.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help=f"'lvis' runs the official lvis-api, 'fast' the same evaluation vectorised (default {DEFAULT_ENGINE})",
    )
    files.add_argument("--max-dets", type=int, default=MAX_DETS, help="detections kept per image; -1 keeps all")
    files.add_argument(
        "--segm-area",
        choices=SEGM_AREAS,
        default=None,
        help="segm detections' area for APs/APm/APl: 'box' (w*h of their 'bbox', mmdetection) or 'mask' (mask "
        "area, detectron2); default: as lvis-api on the file (box if its detections carry 'bbox', else mask)",
    )
    run = parser.add_argument_group("evaluate a training run")
    run.add_argument("--run", type=Path, default=None, help="run folder written by gol-train")
    run.add_argument("--checkpoint", type=Path, default=None, help="checkpoint to evaluate (default: the run's latest)")
    parser.add_argument("--out", type=Path, default=None, help="metrics.json to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gol-eval``; returns the exit status (2 for bad input, with a one-line reason)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("lvis").setLevel(logging.ERROR)  # lvis-api warns on every in-memory result list
    if args.run is not None:
        if args.ann is not None or args.results is not None or args.per_category is not None:
            parser.error("--run evaluates a run's checkpoint; do not combine it with --ann/--results/--per-category")
        return _evaluate_run(args.run, args.checkpoint, args.out)
    if args.checkpoint is not None:
        parser.error("--checkpoint needs --run RUN_DIR")
    missing = [
        flag for flag, value in (("--ann", args.ann), ("--results", args.results), ("--out", args.out)) if value is None
    ]
    if missing:
        parser.error(f"give {' '.join(missing)} (or --run RUN_DIR)")
    try:
        result = evaluate(
            args.ann, args.results, iou_types=args.iou_types, engine=args.engine, max_dets=args.max_dets,
            segm_area=args.segm_area,
        )  # fmt: skip
    except (EvaluationInputError, FileNotFoundError) as e:
        log.error("gol-eval: error: %s", e)
        return 2
    sys.stdout.write(result.table() + "\n")  # the results on stdout; logs (lvis-api's too) on stderr
    if result.segm_area is not None:
        log.info("segm areas (APs/APm/APl) from the detections' %ss", result.segm_area)
    log.info("wrote %s", write_metrics(result, args.out))
    if args.per_category is not None:
        log.info("wrote %s", write_per_category(result, args.per_category))
    return 0


def _evaluate_run(run_dir: Path, checkpoint: Path | None, out: Path | None) -> int:
    from gol.engine import (
        evaluate_run,  # needs torch and the whole training stack; only this mode pays for it
    )

    try:
        metrics = evaluate_run(run_dir, checkpoint=checkpoint, out=out)
    except (EvaluationInputError, FileNotFoundError) as e:
        log.error("gol-eval: error: %s", e)
        return 2
    for iou_type, values in metrics.items():
        if iou_type == EVAL_BLOCK:  # the settings, not metrics
            cells = ", ".join(f"{k} {v}" for k, v in values.items())
        else:
            cells = ", ".join(f"{k} {'-' if v is None else f'{100 * v:.2f}'}" for k, v in values.items())
        sys.stdout.write(f"{iou_type}: {cells}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
