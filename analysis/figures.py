"""Figures from aggregated runs (matplotlib object API on the Agg canvas; no pyplot state).

- `plot_ap_apr`: the paper's Figure 1 style: mask AP and APr per detector (or per the spec's ``figure_x``
  settings), one line per activation, published points as crosses; two panels instead of two y axes.
- `plot_per_category`: per-category mask AP against the number of training images (log x), one panel per
  slice (``figure_x`` value), per activation the categories as dots and their log-binned mean as a line.
- `plot_frequency_groups`: mask AP per frequency group (rare, common, frequent) as grouped bars.
- `plot_errors`: where mask AP50 goes per frequency group (TIDE error types, runs evaluated with
  ``eval.errors=true``), one bar series per row.
Only rows with finished numbers (status ``ok``) are drawn. Values are percentages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.aggregate import Aggregation, RowResult
from analysis.errors import NoRunsError
from analysis.experiments import Metric
from analysis.published import PUBLISHED
from analysis.schema import ERROR_GROUPS, ERROR_NAMES

SERIES = "activation"
# Paper's Figure 1: Softmax solid, Gumbel dashed.
_STYLE = {
    "Sigmoid": ("tab:blue", ":"),
    "Softmax": ("tab:orange", "-"),
    "Gumbel": ("tab:green", "--"),
    "Probit": ("tab:red", "-."),
}
_FALLBACK_COLOURS = ("tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan")
_GROUPS = (("APr", "rare"), ("APc", "common"), ("APf", "frequent"))
_ERROR_TYPES = ERROR_NAMES[1:]  # Cls, Loc, Both, Dupe, Bkg, Miss (ERROR_NAMES[0] is the AP50 baseline)
_GROUP_TITLES = {"all": "all categories", "r": "rare", "c": "common", "f": "frequent"}
# The columns plot_errors reads (mask): aggregate them with the spec's metrics to draw it.
ERROR_METRICS: tuple[Metric, ...] = tuple(
    Metric(f"{group} {name}", f"segm_errors_{group}/{name}", name) for group in ERROR_GROUPS for name in ERROR_NAMES
)


def plot_ap_apr(aggregation: Aggregation) -> Figure:
    """Mask AP (left panel) and APr (right panel) per x position, one line per activation."""
    rows = _finished_rows(aggregation)
    positions = list(dict.fromkeys(_x_label(aggregation, row) for row in rows))
    figure, axes = _figure(2)
    for ax, (metric, title) in zip(axes, (("segm/AP", "AP"), ("segm/APr", "APr")), strict=True):
        for index, (name, series_rows) in enumerate(_by_series(rows).items()):
            colour, style = _style(name, index)
            points = [(positions.index(_x_label(aggregation, r)), r.stats[metric]) for r in series_rows]
            points = sorted((x, s) for x, s in points if s.mean is not None)
            xs = np.array([x for x, _ in points], dtype=float)
            means = np.array([s.mean for _, s in points], dtype=float)
            ax.plot(xs, means, marker="o", color=colour, linestyle=style, label=name)
            stds = np.array([s.std if s.std is not None else 0.0 for _, s in points], dtype=float)
            if stds.any():
                ax.fill_between(xs, means - stds, means + stds, color=colour, alpha=0.15, linewidth=0)
            published = [
                (positions.index(_x_label(aggregation, r)), PUBLISHED[r.row.published].values.get(title))
                for r in series_rows
                if r.row.published
            ]
            marks = [(x, v) for x, v in published if v is not None]
            if marks:
                ax.scatter(
                    [x for x, _ in marks],
                    [v for _, v in marks],
                    marker="x",
                    color=colour,
                    label=f"{name} (paper)",
                )
        ax.set_xticks(range(len(positions)), positions)
        ax.set_xlim(-0.5, len(positions) - 0.5)
        ax.set_xlabel(_x_title(aggregation))
        ax.set_ylabel(f"Mask {title} (%)")
        ax.set_title(f"Mask {title}")
        ax.legend(fontsize="small")
    figure.suptitle(f"{aggregation.spec.name}: mask AP and APr per {_x_title(aggregation).lower()}")
    return figure


def plot_per_category(aggregation: Aggregation, per_category: pd.DataFrame, *, bins: int = 8) -> Figure:
    """Per-category mask AP against training images (log x); per activation dots and a log-binned mean line.

    `per_category` is `analysis.records.load_per_category` of the aggregation's runs.
    """
    rows = _finished_rows(aggregation)
    slices = _slices(aggregation, rows)
    figure, axes = _figure(len(slices))
    for ax, (slice_name, slice_rows) in zip(axes, slices.items(), strict=True):
        for index, (name, series_rows) in enumerate(_by_series(slice_rows).items()):
            run_ids = [run_id for row in series_rows for run_id in row.run_ids]
            data = per_category[per_category["run_id"].isin(run_ids)]
            data = data[(data["image_count"] > 0) & data["segm_AP"].notna()]
            if data.empty:
                continue
            means = data.groupby("category_id").agg(count=("image_count", "first"), ap=("segm_AP", "mean"))
            colour, style = _style(name, index)
            ax.scatter(means["count"], 100.0 * means["ap"], s=10, alpha=0.3, color=colour)
            centres, binned = _log_bins(means["count"].to_numpy(float), 100.0 * means["ap"].to_numpy(float), bins)
            ax.plot(centres, binned, marker="o", color=colour, linestyle=style, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("Training images per category (log scale)")
        ax.set_ylabel("Mask AP (%)")
        ax.set_title(slice_name)
        ax.legend(fontsize="small")
    figure.suptitle(f"{aggregation.spec.name}: per-category mask AP against training images")
    return figure


def plot_frequency_groups(aggregation: Aggregation) -> Figure:
    """Mask AP per frequency group (APr, APc, APf) as grouped bars, one bar series per activation."""
    rows = _finished_rows(aggregation)
    slices = _slices(aggregation, rows)
    figure, axes = _figure(len(slices))
    for ax, (slice_name, slice_rows) in zip(axes, slices.items(), strict=True):
        series = _by_series(slice_rows)
        width = 0.8 / max(len(series), 1)
        for index, (name, series_rows) in enumerate(series.items()):
            stats = [series_rows[0].stats[f"segm/{metric}"] for metric, _ in _GROUPS]
            heights = [np.nan if s.mean is None else s.mean for s in stats]
            errors = [0.0 if s.std is None else s.std for s in stats]
            offsets = np.arange(len(_GROUPS)) - 0.4 + width * (index + 0.5)
            colour, _ = _style(name, index)
            ax.bar(offsets, heights, width=width, yerr=errors, color=colour, label=name)
        ax.set_xticks(range(len(_GROUPS)), [group for _, group in _GROUPS])
        ax.set_xlabel("Frequency group")
        ax.set_ylabel("Mask AP (%)")
        ax.set_title(slice_name)
        ax.legend(fontsize="small")
    figure.suptitle(f"{aggregation.spec.name}: mask AP per frequency group")
    return figure


def plot_errors(aggregation: Aggregation) -> Figure:
    """Mask AP50 lost to each TIDE error type, one panel per frequency group (all, r, c, f), one bar series per row;
    the aggregation must hold `ERROR_METRICS`."""
    rows = _finished_rows(aggregation)
    figure, axes = _figure(len(ERROR_GROUPS))
    width = 0.8 / max(len(rows), 1)
    for ax, group in zip(axes, ERROR_GROUPS, strict=True):
        for index, row in enumerate(rows):
            stats = [row.stats[f"segm_errors_{group}/{name}"] for name in _ERROR_TYPES]
            heights = [np.nan if s.mean is None else s.mean for s in stats]
            spread = [0.0 if s.std is None else s.std for s in stats]
            offsets = np.arange(len(_ERROR_TYPES)) - 0.4 + width * (index + 0.5)
            name = " / ".join(label for label in row.row.labels if label)
            colour, _ = _style(row.facet(SERIES) or name, index)
            ax.bar(offsets, heights, width=width, yerr=spread, color=colour, label=name)
        ax.set_xticks(range(len(_ERROR_TYPES)), list(_ERROR_TYPES))
        ax.set_ylabel("Mask AP50 lost (%)")
        ax.set_title(_GROUP_TITLES[group])
        ax.legend(fontsize="small")
    figure.suptitle(f"{aggregation.spec.name}: where mask AP50 goes (TIDE error types)")
    return figure


def save_figure(figure: Figure, out_dir: Path, stem: str, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write `figure` as ``<out_dir>/<stem>.<format>`` for each format; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        figure.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def _finished_rows(aggregation: Aggregation) -> list[RowResult]:
    rows = [row for row in aggregation.rows if row.status == "ok"]
    if not rows:
        statuses = ", ".join(sorted({row.status for row in aggregation.rows}))
        raise NoRunsError(
            f"nothing to plot for {aggregation.spec.name!r}: no row has finished runs (row statuses: {statuses})"
        )
    return rows


def _figure(panels: int) -> tuple[Figure, list[Axes]]:
    columns = min(panels, 3)
    lines = math.ceil(panels / columns)
    figure = Figure(figsize=(4.8 * columns, 3.8 * lines), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(lines, columns, squeeze=False).ravel().tolist()
    for spare in axes[panels:]:
        spare.remove()
    return figure, axes[:panels]


def _x_label(aggregation: Aggregation, row: RowResult) -> str:
    settings = aggregation.spec.figure_x
    if settings:
        return " / ".join(row.facet(s) or "?" for s in settings)
    return " / ".join(label for label in row.row.labels if label and label != row.facet(SERIES)) or "all"


def _x_title(aggregation: Aggregation) -> str:
    settings = aggregation.spec.figure_x
    return " / ".join(s.replace("_", " ").capitalize() for s in settings) if settings else "Method"


def _slices(aggregation: Aggregation, rows: list[RowResult]) -> dict[str, list[RowResult]]:
    slices: dict[str, list[RowResult]] = {}
    for row in rows:
        slices.setdefault(_x_label(aggregation, row), []).append(row)
    return slices


def _by_series(rows: list[RowResult]) -> dict[str, list[RowResult]]:
    series: dict[str, list[RowResult]] = {}
    for row in rows:
        series.setdefault(row.facet(SERIES) or "?", []).append(row)
    return series


def _style(name: str, index: int) -> tuple[str, str]:
    return _STYLE.get(name, (_FALLBACK_COLOURS[index % len(_FALLBACK_COLOURS)], "-"))


def _log_bins(counts: np.ndarray, values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `values` in log-spaced bins of `counts`; x = geometric mean of the counts in each bin."""
    low, high = counts.min(), counts.max()
    if low == high:
        return np.array([low]), np.array([values.mean()])
    edges = np.geomspace(low, high, min(bins, len(np.unique(counts))) + 1)
    index = np.clip(np.searchsorted(edges, counts, side="right") - 1, 0, len(edges) - 2)
    centres, means = [], []
    for b in np.unique(index):
        members = index == b
        centres.append(float(np.exp(np.log(counts[members]).mean())))
        means.append(float(values[members].mean()))
    return np.array(centres), np.array(means)
