"""Command lines: ``gol-tables`` (paper tables) and ``gol-figures`` (paper-style figures) from run records or W&B.

    gol-tables --runs outputs/sweeps/demo --experiment demo --format md
    gol-tables --runs sweeps/act wandb:me/gol --experiment activations --format tex csv --out paper/
    gol-figures --runs sweeps/act --experiment activations --out paper/figures

Exit status: 0 on success, 1 when the input cannot give the table (one-line message on stderr), 2 on bad
arguments, and on runs that read different annotation files (a cell would average, or a table compare, two
datasets; ``analysis.provenance``). Messages about what is missing in the runs are logged as warnings; the table
is still written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.aggregate import aggregate, select_experiment, spec_for
from analysis.errors import AnalysisError, DatasetMismatchError
from analysis.experiments import check_experiment, known_experiments
from analysis.figures import (
    ERROR_METRICS,
    plot_ap_apr,
    plot_errors,
    plot_frequency_groups,
    plot_per_category,
    save_figure,
)
from analysis.provenance import check_provenance
from analysis.records import load_per_category
from analysis.render import FORMATS, render
from analysis.sources import load_runs
from analysis.tables import make_table

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)


def tables_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gol-tables``."""
    parser = _parser("gol-tables", "Regenerate a paper table from runs, beside the published numbers.")
    parser.add_argument("--format", nargs="+", choices=FORMATS, default=["md"], help="output format(s)")
    parser.add_argument("--out", type=Path, help="write <out>/<experiment>.<format> instead of stdout")
    parser.add_argument(
        "--wandb-log",
        action="store_true",
        help="also log the table to a W&B summary run (offline unless WANDB_MODE is set)",
    )
    parser.add_argument("--wandb-project", default="gol", help="project of the --wandb-log run")
    parser.add_argument("--wandb-dir", type=Path, help="where the --wandb-log run is written (default: --out or .)")
    parser.add_argument(
        "--protocols",
        nargs="+",
        choices=("fixed", "pooled"),
        default=[],
        help="add mask AP/APr/APc/APf columns of AP-fixed and/or AP-pool beside the paper's (runs evaluated with "
        "eval.protocols=[standard,fixed,pooled])",
    )
    args = parser.parse_args(argv)
    _setup_logging()
    try:
        frame = _load(args)
        table = make_table(
            frame, args.experiment, ignore_others=args.ignore_other_experiments, protocols=args.protocols
        )
    except DatasetMismatchError as exc:
        logger.error("%s", exc)
        return 2
    except AnalysisError as exc:
        logger.error("%s", exc)
        return 1
    for fmt in args.format:
        text = render(table, fmt)
        if args.out is None:
            sys.stdout.write(text)
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"{args.experiment}.{fmt}"
            path.write_text(text, encoding="utf-8")
            logger.info("wrote %s", path)
    if args.out is not None:
        _warn(table.notes)
    if args.wandb_log:
        from analysis.wandb_log import log_tables

        directory = args.wandb_dir or args.out or Path(".")
        run_dir = log_tables([table], project=args.wandb_project, directory=directory)
        logger.info("logged the table to W&B run folder %s", run_dir)
    return 0


def figures_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gol-figures``."""
    parser = _parser("gol-figures", "Draw the paper-style figures of an experiment from its runs.")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG/PDF files")
    parser.add_argument("--format", nargs="+", choices=("png", "pdf", "svg"), default=["png", "pdf"])
    args = parser.parse_args(argv)
    _setup_logging()
    try:
        frame = _load(args)
        runs, selection_messages = select_experiment(
            frame, args.experiment, ignore_others=args.ignore_other_experiments
        )
        _warn(selection_messages)
        spec = spec_for(runs, args.experiment)
        aggregation = aggregate(runs, spec)
        _warn(aggregation.messages)
        _warn(check_provenance(aggregation).notes)  # the figures average seeds as the table cells do
        figures = {"ap_apr": plot_ap_apr(aggregation), "frequency_groups": plot_frequency_groups(aggregation)}
        if runs[[m.column for m in ERROR_METRICS]].notna().to_numpy().any():
            figures["errors"] = plot_errors(aggregate(runs, replace(spec, metrics=(*spec.metrics, *ERROR_METRICS))))
        else:
            logger.info("no errors figure: no run of %r was evaluated with eval.errors=true", args.experiment)
        per_category = load_per_category(runs)
        if per_category.empty:
            logger.warning("no per_category.json in the runs of %r; per-category figure skipped", args.experiment)
        else:
            figures["per_category"] = plot_per_category(aggregation, per_category)
    except DatasetMismatchError as exc:
        logger.error("%s", exc)
        return 2
    except AnalysisError as exc:
        logger.error("%s", exc)
        return 1
    for name, figure in figures.items():
        for path in save_figure(figure, args.out, f"{args.experiment}_{name}", args.format):
            logger.info("wrote %s", path)
    return 0


def _load(args: argparse.Namespace) -> pd.DataFrame:
    """The runs named by ``--runs`` for ``--experiment`` (AnalysisError if unusable; what is missing is warned)."""
    check_experiment(args.experiment)
    frame, messages = load_runs(args.runs, experiment=args.experiment, wandb_timeout=args.wandb_timeout)
    _warn(messages)
    return frame


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--runs",
        nargs="+",
        required=True,
        help="sweep/run folders (walked for record.json) and/or wandb:entity/project",
    )
    parser.add_argument(
        "--experiment",
        required=True,
        metavar="NAME",
        help=f"one of: {', '.join(known_experiments())} (none = ad-hoc runs)",
    )
    parser.add_argument(
        "--ignore-other-experiments", action="store_true", help="leave out runs of other experiments instead of failing"
    )
    parser.add_argument("--wandb-timeout", type=float, default=30.0, help="seconds to wait for the W&B API")
    return parser


def _setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)


def _warn(messages: Sequence[str]) -> None:
    for message in messages:
        logger.warning("%s", message)
