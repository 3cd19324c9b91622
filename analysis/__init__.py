"""Regenerate the paper's ablation tables and figures from runs, beside the published numbers.

Pipeline (each step a pure function of its input, except the readers):

1. `analysis.sources.load_runs` reads local run records (`analysis.records`, paired with their W&B offline
   folders by `analysis.offline`) and/or a W&B project (`analysis.wandb_api`) into one DataFrame
   (schema: `analysis.schema`).
2. `analysis.aggregate` selects an experiment's runs, assigns them to the rows of its table spec
   (`analysis.experiments`) and aggregates seeds; `analysis.tables` lays the rows out beside the published
   numbers (`analysis.published`), after `analysis.provenance` has checked that its cells share one dataset and
   marked those of another code version; `analysis.render` writes Markdown, LaTeX or CSV.
3. `analysis.figures` draws the paper-style figures; `analysis.cli` holds ``gol-tables`` and ``gol-figures``.
"""

from analysis.aggregate import Aggregation, RowResult, aggregate, select_experiment, spec_for
from analysis.errors import (
    AnalysisError,
    DatasetMismatchError,
    MixedRunsError,
    NoRunsError,
    UnknownExperimentError,
    WandbUnavailableError,
)
from analysis.experiments import SPECS, TableSpec, get_spec, known_experiments
from analysis.render import render
from analysis.sources import load_runs
from analysis.tables import Table, build_table, make_table

__all__ = [
    "SPECS",
    "Aggregation",
    "AnalysisError",
    "DatasetMismatchError",
    "MixedRunsError",
    "NoRunsError",
    "RowResult",
    "Table",
    "TableSpec",
    "UnknownExperimentError",
    "WandbUnavailableError",
    "aggregate",
    "build_table",
    "get_spec",
    "known_experiments",
    "load_runs",
    "make_table",
    "render",
    "select_experiment",
    "spec_for",
]
