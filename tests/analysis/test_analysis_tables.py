"""Tables from the committed fixture sweeps: golden Markdown/LaTeX/CSV, seed statistics, statuses, bad input.

Regenerate the golden files after an intended format change with ``GOL_UPDATE_GOLDEN=1 pytest tests/analysis``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.aggregate import _stat, aggregate, select_experiment, spec_for
from analysis.errors import MixedRunsError, NoRunsError, UnknownExperimentError
from analysis.experiments import SPECS, get_spec
from analysis.published import PUBLISHED
from analysis.records import load_local_runs
from analysis.render import render
from analysis.schema import CHOICE_FIELDS
from analysis.tables import make_table

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
GOLDEN = HERE / "golden"


FIRST_SWEEP = "2025-03-01_09-12-44-118204_3121-9f8e7d"  # fixtures/activations: first launch; a re-launch follows


def _frame(*experiments: str) -> pd.DataFrame:
    frame, _ = load_local_runs([FIXTURES / experiment for experiment in experiments])
    return frame


def _cell(experiment: str, cell: str, root: Path = FIXTURES) -> Path:
    (found,) = (root / experiment).glob(f"*/{cell}")
    return found


def _lines(table, kind: str = "ours") -> dict[tuple[str, ...], object]:
    return {line.labels: line for line in table.lines if line.kind == kind}


@pytest.mark.parametrize("experiment", ["demo", "activations"])
@pytest.mark.parametrize("fmt", ["md", "tex", "csv"])
def test_analysis_golden_tables(experiment: str, fmt: str) -> None:
    text = render(make_table(_frame(experiment), experiment), fmt)
    golden = GOLDEN / f"{experiment}.{fmt}"
    if os.environ.get("GOL_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_analysis_seeds_mean_and_sample_std_by_hand() -> None:
    table = make_table(_frame("demo"), "demo")
    gumbel = _lines(table)[("Gumbel",)]
    # activation=gumbel,seed=0 and seed=1: segm/AP 0.1630 and 0.1662, bbox/AP 0.1668 and 0.1690.
    ap, apb = gumbel.values[0], gumbel.values[4]
    assert ap.mean == pytest.approx((16.30 + 16.62) / 2)
    assert ap.std == pytest.approx(math.sqrt(((16.30 - 16.46) ** 2 + (16.62 - 16.46) ** 2) / 1))
    assert apb.mean == pytest.approx(16.79)
    assert apb.std == pytest.approx(abs(16.68 - 16.90) / math.sqrt(2))
    assert (ap.n, ap.of) == (2, 2)
    assert gumbel.seeds == (0, 1)
    # The running seed-2 Softmax run and the failed seed-2 Gumbel run are shown, not averaged.
    assert _lines(table)[("Softmax",)].source == "ours (2 seeds, +1 running)"
    assert gumbel.source == "ours (2 seeds, +1 failed)"


def test_analysis_statuses_marked_not_dropped() -> None:
    table = make_table(_frame("activations"), "activations")
    ours = _lines(table)
    assert ours[("R101", "Sigmoid")].status == "missing"
    assert ours[("R101", "Gumbel")].status == "duplicated"
    assert ours[("X101", "Softmax")].status == "failed"
    assert ours[("X101", "Gumbel")].status == "running"
    assert ours[("R50", "Softmax")].status == "ok"  # its failed seed-0 run is superseded by a finished one
    # Every spec row is present, plus the run whose detector option the spec does not know.
    assert len(ours) == len(SPECS["activations"].rows) + 1
    assert ("detector=maskrcnn_r50_fpn_v2 activation=gumbel", "") in ours
    notes = " ".join(table.notes)
    assert (
        "seed 0: 095000b29ffb0053 (2025-03-01_09-12-44-118204_3121-9f8e7d/activation=gumbel,detector=maskrcnn_"
        "r101_fpn,seed=0), 0b3ed9ea5a857369 (2025-03-04_18-40-02-660151_7710-1c2b3a/activation=gumbel,detector="
        "maskrcnn_r101_fpn,seed=0)"
    ) in notes
    assert "superseded by a finished run of the same seed, not counted: 7cce83bab2a85210 (failed, seed 0)" in notes
    assert "CUDA out of memory" in notes


def test_analysis_metric_missing_in_some_runs_is_reported() -> None:
    table = make_table(_frame("activations"), "activations")
    apf = _lines(table)[("R50", "Gumbel")].values[3]
    assert (apf.n, apf.of) == (1, 2)
    assert apf.mean == pytest.approx(27.52) and apf.std is None
    assert any(
        note.startswith("segm/APf (APf) is missing in 1 of 6 finished runs (0f2bac727c524de3)") for note in table.notes
    )


def test_analysis_published_rows_and_deltas() -> None:
    table = make_table(_frame("activations"), "activations")
    published = _lines(table, "published")
    assert [v.mean for v in published[("R50", "Gumbel")].values] == [19.0, 4.9, 16.8, 27.6, 19.1]
    fig = published[("R101", "Softmax")]
    assert [None if v is None else v.mean for v in fig.values] == [16.7, 0.5, None, None, None]
    assert fig.values[0].approximate and fig.source == "Fig. 1"
    delta = _lines(table, "delta")[("R50", "Sigmoid")]
    # ours 16.2 (0.1621 displayed) minus README 16.4.
    assert delta.values[0].mean == pytest.approx(-0.2)
    assert all(line.kind != "delta" for line in table.lines if line.labels == ("R101", "Gumbel"))


def test_analysis_best_value_per_column_is_bold() -> None:
    table = make_table(_frame("demo"), "demo")
    bold = {labels: [v.bold for v in line.values] for labels, line in _lines(table).items()}
    assert bold[("Gumbel",)] == [True] * 5
    assert not any(bold[("Sigmoid",)]) and not any(bold[("Softmax",)])


def test_analysis_published_numbers_match_paper_notes() -> None:
    assert PUBLISHED["readme-1.1/softmax"].values == {"AP": 15.2, "APr": 0.0, "APc": 10.6, "APf": 26.9, "APb": 16.1}
    assert PUBLISHED["readme-1.2/gol-r101-v1"].values["APb"] == 29.2
    assert PUBLISHED["fig-1/h-r101/gumbel"].approximate and not PUBLISHED["fig-1/m-r50/gumbel"].approximate
    assert PUBLISHED["sota/loce"].values["APf"] == 30.7
    for spec in SPECS.values():
        for row in spec.rows:
            assert row.published is None or row.published in PUBLISHED


def _copy_run(source: Path, target: Path, **record_changes: object) -> Path:
    shutil.copytree(source, target)
    record_file = target / "record.json"
    record = json.loads(record_file.read_text())
    for key, value in record_changes.items():
        if key in CHOICE_FIELDS:
            record["choices"][key] = value
        else:
            record[key] = value
    record_file.write_text(json.dumps(record))
    return target


def test_analysis_mixed_experiments_error(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "demo", tmp_path / "demo")
    _copy_run(_cell("activations", "activation=sigmoid,detector=maskrcnn_r50_fpn,seed=0"), tmp_path / "other" / "0")
    frame, _ = load_local_runs([tmp_path])
    with pytest.raises(MixedRunsError, match=r"other experiments mixed into the 'demo' table: activations \(1\)"):
        make_table(frame, "demo")
    table = make_table(frame, "demo", ignore_others=True)
    assert table.notes[0] == "left out 1 run of other experiments: activations (1)"


def test_analysis_mixed_datasets_error(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "demo", tmp_path / "demo")
    _copy_run(
        _cell("demo", "activation=sigmoid,seed=0"), tmp_path / "more" / "0", run_id="0dd0", dataset="lvis_v1", seed=9
    )
    frame, _ = load_local_runs([tmp_path])
    with pytest.raises(MixedRunsError, match=r"differ in dataset \(embedded: 8, lvis_v1: 1\)"):
        make_table(frame, "demo")


def test_analysis_settings_outside_the_rows_must_not_vary(tmp_path: Path) -> None:
    # The sota table does not split by schedule: 1x and 2x runs in one table are an error.
    sigmoid = _cell("activations", "activation=sigmoid,detector=maskrcnn_r50_fpn,seed=0")
    gumbel = _cell("activations", "activation=gumbel,detector=maskrcnn_r50_fpn,seed=0")
    _copy_run(sigmoid, tmp_path / "a" / "0", experiment="sota", schedule="2x")
    _copy_run(gumbel, tmp_path / "a" / "1", experiment="sota", seed=1)
    frame, _ = load_local_runs([tmp_path / "a"])
    with pytest.raises(MixedRunsError, match=r"differ in schedule \(1x: 1, 2x: 1\)"):
        make_table(frame, "sota")
    # Its Seesaw row does not fix the activation, so a Seesaw row of Softmax and Gumbel runs is an error too.
    for job, (source, activation) in enumerate(((sigmoid, "softmax"), (gumbel, "gumbel"))):
        _copy_run(
            source, tmp_path / "b" / str(job), experiment="sota", loss="seesaw", sampler="rfs", activation=activation
        )
    frame, _ = load_local_runs([tmp_path / "b"])
    with pytest.raises(MixedRunsError, match=r"row 'Seesaw / R50 / LVIS v1' of the 'sota' table mixes activation"):
        make_table(frame, "sota")


def test_analysis_no_runs_and_unknown_experiment() -> None:
    frame = _frame("demo")
    with pytest.raises(NoRunsError, match=r"no runs of experiment 'losses' among 8 runs \(found: demo \(8\)\)"):
        make_table(frame, "losses")
    with pytest.raises(UnknownExperimentError, match="known experiments: activations, schedule_sampler"):
        make_table(frame, "activation")
    with pytest.raises(UnknownExperimentError):
        get_spec("bogus")


def test_analysis_adhoc_runs_grouped_by_activation_loss_detector(tmp_path: Path) -> None:
    for activation in ("sigmoid", "softmax", "gumbel"):
        _copy_run(_cell("demo", f"activation={activation},seed=0"), tmp_path / activation, experiment=None)
    frame, _ = load_local_runs([tmp_path])
    runs, _ = select_experiment(frame, "none")
    spec = spec_for(runs, "none")
    assert spec.label_headers == ("Activation", "Loss", "Detector")
    table = make_table(frame, "none")
    assert [line.labels for line in table.lines] == [
        ("gumbel", "ce", "tiny"),
        ("sigmoid", "ce", "tiny"),
        ("softmax", "ce", "tiny"),
    ]
    assert all(line.status == "ok" for line in table.lines)


def test_analysis_duplicated_cell_is_not_averaged() -> None:
    aggregation = aggregate(_frame("activations"), get_spec("activations"))
    row = next(r for r in aggregation.rows if r.row.labels == ("R101", "Gumbel"))
    assert row.status == "duplicated" and all(stat.mean is None for stat in row.stats.values())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=1, max_size=6))
def test_analysis_stat_is_mean_and_sample_std(values: list[float]) -> None:
    stat = _stat(pd.Series([*values, float("nan")]))
    percent = [100.0 * v for v in values]
    assert stat.mean == pytest.approx(statistics.fmean(percent), abs=1e-9)
    assert (stat.n, stat.of) == (len(values), len(values) + 1)
    if len(values) > 1:
        assert stat.std == pytest.approx(statistics.stdev(percent), abs=1e-7)
    else:
        assert stat.std is None


def test_analysis_specs_cover_the_paper_experiments() -> None:
    assert set(SPECS) == {
        "activations", "schedule_sampler", "lvis_v05", "losses", "gol_ablation", "sota", "beyond", "demo"
    }  # fmt: skip
    assert [row.labels for row in SPECS["demo"].rows] == [("Sigmoid",), ("Softmax",), ("Gumbel",)]
    assert all(m.name for m in SPECS["demo"].metrics) and [m.column for m in SPECS["demo"].metrics] == [
        "segm/AP",
        "segm/APr",
        "segm/APc",
        "segm/APf",
        "bbox/AP",
    ]
    # Every detector option of conf/detector the paper's tables use is matched by its level.
    detectors = {row.facet("detector"): row.match["detector"] for row in SPECS["activations"].rows}
    assert detectors["R50"].accepts("maskrcnn_r50_fpn") and not detectors["R50"].accepts("maskrcnn_r50_fpn_v2")
    assert detectors["X101"].accepts("maskrcnn_x101_fpn")


def test_analysis_beyond_rows_tell_the_cells_apart_and_name_their_references() -> None:
    gol = {"loss": "droploss", "activation": "gumbel", "normed_mask": True, "sampler": "rfs_ceil",
           "detector": "maskrcnn_r50_fpn", "schedule": "2x"}  # fmt: skip
    runs = {
        "GOL": {**gol, "calibration": "none"},
        "GOL + FRACAL": {**gol, "calibration": "fracal"},
        "AGLU + GOL": {**gol, "activation": "aglu", "calibration": "none"},
        "EQLv2 (sigmoid)": {
            "loss": "eqlv2",
            "activation": "sigmoid",
            "sampler": "random",
            "detector": "maskrcnn_r50_fpn",
            "schedule": "1x",
            "calibration": "none",
        },
        "AGLU (CE)": {
            "loss": "ce",
            "activation": "aglu",
            "sampler": "random",
            "detector": "maskrcnn_r50_fpn",
            "schedule": "1x",
        },
    }
    rows = SPECS["beyond"].rows
    for label, run in runs.items():
        assert [row.labels[0] for row in rows if row.matches(run)] == [label]
    old_record = {**gol, "calibration": None}  # a record from before the calibration group: uncalibrated GOL
    assert [row.labels[0] for row in rows if row.matches(old_record)] == ["GOL"]
    references = {row.labels[0]: row.published for row in rows}
    assert references == {"GOL": "sota/gol", "EQLv2 (sigmoid)": "beyond/eqlv2", "AGLU (CE)": None,
                          "AGLU + GOL": "beyond/apa-gol", "GOL + FRACAL": "beyond/fracal"}  # fmt: skip


def test_analysis_gol_run_in_sota_and_ablation_tables(tmp_path: Path) -> None:
    gol = _copy_run(
        _cell("activations", "activation=gumbel,detector=maskrcnn_r50_fpn,seed=0"),
        tmp_path / "gol",
        experiment="sota",
        loss="droploss",
        sampler="rfs",
        schedule="2x",
    )
    config = gol / "config.yaml"
    config.write_text(config.read_text().replace("normed_mask: false", "normed_mask: true"))
    frame, _ = load_local_runs([tmp_path])
    table = make_table(frame, "sota")
    kinds = [(line.labels, line.kind, line.status) for line in table.lines]
    assert (("LOCE", "R50", "LVIS v1"), "published", "published") in kinds
    assert all(labels != ("LOCE", "R50", "LVIS v1") or kind == "published" for labels, kind, _ in kinds)
    assert (("GOL", "R50", "LVIS v1"), "ours", "ok") in kinds
    assert (("GOL", "R101", "LVIS v1"), "ours", "missing") in kinds
    delta = _lines(table, "delta")[("GOL", "R50", "LVIS v1")]
    assert delta.values[0].mean == pytest.approx(18.8 - 27.7)
    frame.loc[:, "experiment"] = "gol_ablation"
    ablation = _lines(make_table(frame, "gol_ablation"))
    assert ablation[("+ RFS (GOL)",)].status == "ok"
    assert ablation[("DropLoss (Gumbel)",)].status == ablation[("+ normalised mask",)].status == "missing"


def test_analysis_a_cell_that_deviates_from_its_released_config_says_so(tmp_path: Path) -> None:
    """A run whose record lists deviations from its released config is marked in its row, never passed off."""
    shutil.copytree(FIXTURES / "activations", tmp_path / "activations")
    record_file = _cell("activations", "activation=gumbel,detector=maskrcnn_r50_fpn,seed=0", tmp_path) / "record.json"
    record = json.loads(record_file.read_text())
    record["deviations"] = ["loss.numerics=stable", "detector.box_nms_thresh=0.4"]
    record_file.write_text(json.dumps(record))
    table = make_table(load_local_runs([tmp_path])[0], "activations")
    sources = {labels: line.source for labels, line in _lines(table).items()}
    marked = [s for s in sources.values() if "deviates from the released config" in s]
    assert marked and all("detector.box_nms_thresh=0.4, loss.numerics=stable" in s for s in marked)
    assert "deviates from the released config: detector.box_nms_thresh=0.4" in render(table, "md")
    assert len(marked) == 1  # the other rows are the released cells
