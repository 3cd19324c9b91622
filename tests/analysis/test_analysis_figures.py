"""Figures from the fixture sweeps: files written, axes labelled, one series per activation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer

from analysis.aggregate import Aggregation, aggregate, select_experiment, spec_for
from analysis.errors import NoRunsError
from analysis.figures import plot_ap_apr, plot_frequency_groups, plot_per_category, save_figure
from analysis.records import load_local_runs, load_per_category

FIXTURES = Path(__file__).parent / "fixtures"


def _aggregation(experiment: str) -> Aggregation:
    frame, _ = load_local_runs([FIXTURES / experiment])
    runs, _ = select_experiment(frame, experiment)
    return aggregate(runs, spec_for(runs, experiment))


def test_analysis_figure_ap_apr_one_line_per_activation(tmp_path: Path) -> None:
    figure = plot_ap_apr(_aggregation("activations"))
    ap, apr = figure.axes
    for ax, metric in ((ap, "AP"), (apr, "APr")):
        assert ax.get_xlabel() == "Detector" and ax.get_ylabel() == f"Mask {metric} (%)"
        assert [line.get_label() for line in ax.get_lines()] == ["Sigmoid", "Softmax", "Gumbel"]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["R50", "R101", "maskrcnn_r50_fpn_v2"]
        assert ax.get_legend() is not None
    softmax = ap.get_lines()[1]
    assert list(softmax.get_xdata()) == [0, 1]
    assert list(softmax.get_ydata()) == pytest.approx([15.34, 16.55])
    gumbel = ap.get_lines()[2]  # R50 (2 seeds) and the R50 v2 run; the duplicated R101 cell is not drawn
    assert list(gumbel.get_xdata()) == [0, 2]
    # Published points are crosses beside the lines, not extra lines.
    assert {c.get_label() for c in ap.collections if isinstance(c, PathCollection)} == {
        "Sigmoid (paper)",
        "Softmax (paper)",
        "Gumbel (paper)",
    }
    paths = save_figure(figure, tmp_path, "activations_ap_apr")
    assert [p.name for p in paths] == ["activations_ap_apr.png", "activations_ap_apr.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_analysis_figure_per_category_log_axis(tmp_path: Path) -> None:
    aggregation = _aggregation("demo")
    figure = plot_per_category(aggregation, load_per_category(aggregation.frame))
    (ax,) = figure.axes
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "Training images per category (log scale)" and ax.get_ylabel() == "Mask AP (%)"
    assert [line.get_label() for line in ax.get_lines()] == ["Sigmoid", "Softmax", "Gumbel"]
    assert ax.get_title() == "tiny"
    # Seven categories with an AP (harp has none) as dots, per activation.
    assert [len(c.get_offsets()) for c in ax.collections] == [7, 7, 7]
    assert min(min(line.get_xdata()) for line in ax.get_lines()) > 1  # bins of 3 and more images
    assert save_figure(figure, tmp_path, "demo_per_category", ("png",))[0].is_file()


def test_analysis_figure_frequency_groups_grouped_bars(tmp_path: Path) -> None:
    figure = plot_frequency_groups(_aggregation("demo"))
    (ax,) = figure.axes
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [b.get_label() for b in bars] == ["Sigmoid", "Softmax", "Gumbel"]
    assert all(len(b.patches) == 3 for b in bars)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["rare", "common", "frequent"]
    assert ax.get_xlabel() == "Frequency group" and ax.get_ylabel() == "Mask AP (%)"
    gumbel_rare = bars[2].patches[0].get_height()
    assert gumbel_rare == pytest.approx((7.05 + 7.33) / 2)
    assert save_figure(figure, tmp_path, "demo_frequency_groups", ("pdf",))[0].is_file()


def test_analysis_figure_needs_finished_rows() -> None:
    aggregation = _aggregation("activations")
    unfinished = replace(aggregation, rows=tuple(r for r in aggregation.rows if r.status != "ok"))
    with pytest.raises(NoRunsError, match="no row has finished runs"):
        plot_ap_apr(unfinished)
