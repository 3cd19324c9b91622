"""``gol-eval``: evaluate an LVIS results file, or the checkpoint of a run, with lvis-api's semantics.

gol-eval --ann GT.json --results DETS.json --out metrics.json [--per-category PATH]
         [--iou-types bbox segm] [--engine hotcoco|lvis] [--max-dets 300] [--segm-area box|mask]
         [--protocol standard fixed pooled] [--dets-per-category 10000] [--errors]
gol-eval --run RUN_DIR [--checkpoint PATH] [--out PATH] [--protocol ...] [--dets-per-category K] [--infer-topk K]
         [--errors] [calibration=NAME] [calibration.KEY=VALUE ...]

A results file is evaluated as lvis-api evaluates it: segm detections' areas (APs/APm/APl) are their boxes' w*h
when the file's detections carry ``bbox``, else their masks'; ``--segm-area`` picks one convention instead. A
run's checkpoint is evaluated with its config's ``eval`` settings; ``--protocol``, ``--dets-per-category``,
``--infer-topk`` and ``--errors`` replace them for this evaluation (AP-fixed of a run trained without it), whose metrics go to
``--out`` only: the run's own metrics.json stays as training recorded it. ``calibration=fracal`` rescores the trained
run at test time (FRACAL, with the statistics of the run's training annotations); its metrics go to ``--out`` or, by
default, to RUN_DIR/evaluations/<overrides>/metrics.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gol.evaluation.api import DEFAULT_ENGINE, DETS_PER_CATEGORY, ENGINES, MAX_DETS, PROTOCOLS, SEGM_AREAS, evaluate
from gol.evaluation.errors import EvaluationInputError
from gol.evaluation.result import EVAL_BLOCK, write_metrics, write_per_category
from gol.evaluation.summary import IOU_TYPES

log = logging.getLogger(__name__)

EVALUATIONS = "evaluations"  # RUN_DIR/evaluations/<overrides>/: gol-eval --run's calibrated records
RUN_FILES = ("metrics.json", "per_category.json", "record.json", "config.yaml")  # never written over by gol-eval


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gol-eval",
        description="LVIS bbox/segm evaluation (AP, AP50, AP75, APs, APm, APl, APr, APc, APf, AR@300, ARs@300, "
        "ARm@300, ARl@300) with lvis-api semantics; AP-fixed and AP-pool on request.",
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
        help=f"'hotcoco' runs hotcoco's LVIS evaluation on the detections lvis-api evaluates, 'lvis' the official "
        f"lvis-api itself; both give the same numbers (default {DEFAULT_ENGINE})",
    )
    files.add_argument("--max-dets", type=int, default=MAX_DETS, help="detections kept per image; -1 keeps all")
    files.add_argument(
        "--segm-area",
        choices=SEGM_AREAS,
        default=None,
        help="segm detections' area for APs/APm/APl: 'box' (w*h of their 'bbox', mmdetection) or 'mask' (mask "
        "area, detectron2); default: as lvis-api on the file (box if its detections carry 'bbox', else mask)",
    )
    files.add_argument(
        "--protocol",
        nargs="+",
        choices=PROTOCOLS,
        default=None,
        help="standard: LVIS AP (--max-dets per image); fixed: AP-fixed, the top --dets-per-category detections of "
        "each category over the set, no per-image cap (Dave et al. 2021); pooled: AP-pool over all categories and "
        "each frequency group, from the same detections (default: standard)",
    )
    files.add_argument(
        "--dets-per-category",
        type=int,
        default=None,
        help=f"detections per category for --protocol fixed/pooled (default {DETS_PER_CATEGORY})",
    )
    parser.add_argument(
        "--errors",
        action="store_true",
        default=None,
        help="also break AP50 down by error type per frequency group (TIDE, from hotcoco): classification, "
        "localisation, both, duplicates, background, missed",
    )
    run = parser.add_argument_group("evaluate a training run")
    run.add_argument("--run", type=Path, default=None, help="run folder written by gol-train")
    run.add_argument("--checkpoint", type=Path, default=None, help="checkpoint to evaluate (default: the run's latest)")
    run.add_argument(
        "--infer-topk",
        type=int,
        default=None,
        help="keep the top K detections of each category over the split at inference (eval.infer_topk; AP-fixed "
        "uses 10000)",
    )
    parser.add_argument("--out", type=Path, default=None, help="metrics.json to write")
    parser.add_argument(
        "overrides",
        nargs="*",
        default=[],
        help="with --run: calibration=NAME (none, fracal) and calibration.KEY=VALUE, e.g. calibration=fracal "
        "calibration.fractal_power=1; the metrics go to --out (default RUN_DIR/evaluations/<overrides>/metrics.json)",
    )
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
        overrides = {
            key: value
            for key, value in (
                ("protocols", args.protocol), ("dets_per_category", args.dets_per_category),
                ("infer_topk", args.infer_topk), ("errors", args.errors),
            )
            if value is not None
        }  # fmt: skip
        out = args.out
        if args.overrides and out is None:  # a calibrated evaluation is a record of its own beside the run's
            out = args.run / EVALUATIONS / ",".join(args.overrides) / "metrics.json"
        if overrides and out is None:
            parser.error(
                "--protocol/--dets-per-category/--infer-topk/--errors with --run need --out PATH for their metrics"
            )
        return _evaluate_run(args.run, args.checkpoint, out, overrides, args.overrides)
    if args.overrides:
        parser.error(f"{' '.join(args.overrides)}: config overrides apply to a run's checkpoint; give --run RUN_DIR")
    if args.infer_topk is not None:
        parser.error("--infer-topk runs inference: it needs --run RUN_DIR")
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
            segm_area=args.segm_area, protocols=args.protocol or ["standard"],
            dets_per_category=DETS_PER_CATEGORY if args.dets_per_category is None else args.dets_per_category,
            errors=bool(args.errors),
        )  # fmt: skip
        sys.stdout.write(result.table() + "\n")  # the results on stdout; logs (lvis-api's too) on stderr
        if result.segm_area is not None:
            areas = {"box": "boxes", "mask": "masks"}[result.segm_area]
            log.info("segm areas (APs/APm/APl) from the detections' %s", areas)
        log.info("wrote %s", write_metrics(result, args.out))
        if args.per_category is not None:
            log.info("wrote %s", write_per_category(result, args.per_category))
    except (EvaluationInputError, OSError) as e:  # FileNotFoundError, DiskFullError: one line
        log.error("gol-eval: error: %s", e)
        return 2
    return 0


def _evaluate_run(
    run_dir: Path, checkpoint: Path | None, out: Path | None, overrides: dict[str, Any], config_overrides: list[str]
) -> int:
    from gol.checkpoint import NoIntactCheckpointError

    try:
        metrics = evaluate_run(
            run_dir, checkpoint=checkpoint, out=out, eval_overrides=overrides, config_overrides=config_overrides
        )
    except (EvaluationInputError, NoIntactCheckpointError, OSError) as e:  # bad input, a damaged checkpoint, a full
        # disk, a missing file: one line; anything else is a bug and keeps its traceback
        log.error("gol-eval: error: %s", e)
        return 2
    for iou_type, values in metrics.items():
        if iou_type == EVAL_BLOCK:  # the settings, not metrics
            cells = ", ".join(f"{k} {v}" for k, v in values.items())
        else:
            cells = ", ".join(f"{k} {'-' if v is None else f'{100 * v:.2f}'}" for k, v in values.items())
        sys.stdout.write(f"{iou_type}: {cells}\n")
    return 0


def evaluate_run(
    run_dir: Path,
    *,
    checkpoint: Path | None = None,
    out: Path | None = None,
    eval_overrides: dict[str, Any] | None = None,
    config_overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Evaluate a run's checkpoint (default: its latest) on its val split; writes ``out`` when given.

    ``eval_overrides`` (``protocols``, ``dets_per_category``, ``infer_topk``, ``errors``) replace the run's ``eval``
    settings for this evaluation, checked before the detector is built. ``config_overrides`` (``calibration=NAME``,
    ``calibration.KEY=VALUE``) replace its test-time calibration; the run's own files are never written over.
    """
    # torch and the whole training stack: only this mode of gol-eval pays for them.
    from omegaconf import DictConfig, OmegaConf

    from gol import checkpoint as ckpt_io
    from gol import distributed, record
    from gol.build import build_components
    from gol.config.calibration import option_of
    from gol.config.dataset import CACHE_DIR
    from gol.config.train import EvalConf
    from gol.engine import set_threads
    from gol.inference import evaluate_model
    from gol.models.weights import BN_COUNTER_SUFFIX
    from gol.validate import check_calibration, check_protocols

    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{run_dir} holds no config.yaml; pass the folder of a run started by gol-train")
    cfg = OmegaConf.load(config_file)
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{config_file} does not hold a config mapping")
    # A config written before an eval option existed takes the option's default (eval.segm_area: mask areas,
    # which such runs were evaluated with).
    cfg.eval = OmegaConf.merge(OmegaConf.structured(EvalConf), cfg.get("eval") or {})
    # A run from before the annotation cache reads the node's cache as new runs do (dataset.cache_dir's default).
    if "dataset" in cfg and "cache_dir" not in cfg.dataset and OmegaConf.select(cfg, "paths.data_root") is not None:
        cfg.dataset.cache_dir = CACHE_DIR
    if cfg.eval.engine == "fast":  # the retired vectorised engine gave lvis-api's numbers, as hotcoco does
        cfg.eval.engine = "hotcoco"
    for key, value in (eval_overrides or {}).items():
        cfg.eval[key] = value
    if out is not None and Path(out).resolve().parent == run_dir.resolve() and Path(out).name in RUN_FILES:
        raise EvaluationInputError(f"--out {out} would replace the run's own {Path(out).name}; write elsewhere")
    try:
        # A run from before the calibration group was scored by its activation alone (calibration=none).
        cfg.calibration = calibration_override(cfg.get("calibration"), config_overrides)
        check_protocols(cfg.eval)
        check_calibration(cfg)
    except ValueError as error:
        raise EvaluationInputError(str(error)) from None
    set_threads(cfg)
    device = distributed.device_for(cfg.device, distributed.World())
    if checkpoint is not None:
        path, state = checkpoint, ckpt_io.load(checkpoint, map_location=device)
    else:  # the newest checkpoint that loads whole
        found = ckpt_io.load_latest(run_dir / "checkpoints", map_location=device)
        if found is None:
            raise FileNotFoundError(f"{run_dir}/checkpoints holds no checkpoint; pass --checkpoint PATH")
        path, state = found
    # The checkpoint holds every weight: the detector is built without reading (or needing) its weight files.
    cfg.detector.weights = None
    if "weights_backbone" in cfg.detector:
        cfg.detector.weights_backbone = None
    try:  # the calibration's statistics: the run's saved ones, else from its training annotations
        parts = build_components(cfg, run_dir=run_dir, save_stats=False)  # the run's folder is only read
    except ValueError as error:
        raise EvaluationInputError(str(error)) from None
    # Built without pretrained weights, torchvision's norm makes BatchNorm2d where training had FrozenBatchNorm2d:
    # the same statistics and affine parameters, plus a step counter the checkpoint does not hold.
    missing, unexpected = parts.model.load_state_dict(state["model"], strict=False)
    stray = [k for k in missing if not k.endswith(BN_COUNTER_SUFFIX)] + list(unexpected)
    if stray:
        raise EvaluationInputError(f"{path} does not fit the run's detector (config.yaml): e.g. {', '.join(stray[:3])}")
    evaluated = evaluate_model(
        parts.model.to(device), parts.data, cfg.eval, device=device, num_workers=int(cfg.num_workers)
    )
    assert evaluated is not None  # one process is its own rank 0
    metrics, per_category = evaluated
    if config_overrides:  # the settings that changed the numbers, as the eval block names the others
        metrics.setdefault(EVAL_BLOCK, {})["calibration"] = {
            "option": option_of(cfg.calibration),
            **{str(k): v for k, v in cfg.calibration.items() if not str(k).startswith("_")},
        }
    if out is not None:
        record.write_json(out, metrics)
        if per_category is not None:
            record.write_json(out.with_name(out.stem + "_per_category.json"), per_category)
    return metrics


def calibration_override(run_node: Any, overrides: Sequence[str]) -> Any:
    """The calibration node an evaluation uses: the run's (``none`` if its config predates the group), replaced by
    ``calibration=NAME`` and changed by ``calibration.KEY=VALUE``; ValueError (one line) for any other override."""
    from gol.config.calibration import calibration_config, option_of

    name = None
    settings = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not (key == "calibration" or key.startswith("calibration.")):
            raise ValueError(
                f"gol-eval --run takes calibration=NAME and calibration.KEY=VALUE overrides, got {item!r}; other "
                "settings are the run's own"
            )
        if key == "calibration":
            name = value
        else:
            settings.append(f"{key.removeprefix('calibration.')}={value}")
    if name is None:  # the run's own calibration, changed
        return calibration_config(option_of(run_node), settings, base=run_node)
    return calibration_config(name, settings)


if __name__ == "__main__":
    raise SystemExit(main())
