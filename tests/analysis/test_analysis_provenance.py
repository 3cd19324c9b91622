"""Provenance in tables: runs of different annotation files are refused (one line, exit 2); cells of a dirty tree
or another commit are marked and explained; runs recorded before fingerprints existed are noted, not refused."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from analysis.aggregate import aggregate, select_experiment
from analysis.cli import figures_main, tables_main
from analysis.errors import DatasetMismatchError
from analysis.experiments import GUMBEL, SIGMOID, SOFTMAX, Level, get_spec, grid
from analysis.provenance import check_provenance
from analysis.records import load_local_runs
from analysis.render import render
from analysis.tables import make_table

FIXTURES = Path(__file__).parent / "fixtures"
OTHER = "0" * 64  # the digest of another annotation file; sorts before the fixtures' own


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A copy of the demo sweep: Sigmoid, Softmax and Gumbel, two finished seeds each (+1 running, +1 failed)."""
    shutil.copytree(FIXTURES / "demo", tmp_path / "demo")
    return tmp_path / "demo"


def _edit(sweep: Path, cell: str, **changes: Any) -> dict[str, Any]:
    """Change the record of one run of the sweep (``activation=gumbel,seed=1``); returns the new record."""
    (path,) = sweep.glob(f"*/{cell}/record.json")
    record = json.loads(path.read_text())
    for key, value in changes.items():
        if key in ("train", "val"):
            record["annotations"][key]["sha256"] = value
        elif value is None:
            record.pop(key, None)
        else:
            record[key] = value
    path.write_text(json.dumps(record))
    return record


def _digest(sweep: Path, split: str) -> str:
    (path,) = sweep.glob("*/activation=sigmoid,seed=0/record.json")
    return str(json.loads(path.read_text())["annotations"][split]["sha256"])


def _refusal(sweep: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """gol-tables on the sweep exits 2 with one error line and no table; the line."""
    caplog.set_level(logging.INFO)
    assert tables_main(["--runs", str(sweep), "--experiment", "demo"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert capsys.readouterr().out == ""
    return errors[0]


def test_seeds_of_different_val_files_are_not_averaged(
    sweep: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(sweep, "activation=gumbel,seed=1", val=OTHER)
    mine = _digest(sweep, "val")[:12]
    assert _refusal(sweep, caplog, capsys) == (
        f"the 'demo' table mixes val annotation files (sha256 {OTHER[:12]} in Gumbel seed 1; {mine} in Sigmoid, "
        "Softmax, Gumbel seed 0): cell(s) 'Gumbel' would average runs of different datasets; evaluate every run "
        "against the same val file, or pass --runs folders of one dataset only"
    )
    # gol-figures averages the same seeds: refused the same way, before drawing anything.
    caplog.clear()
    assert figures_main(["--runs", str(sweep), "--experiment", "demo", "--out", str(sweep / "figures")]) == 2
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        f"the 'demo' table mixes val annotation files (sha256 {OTHER[:12]} in Gumbel seed 1; {mine} in Sigmoid, "
        "Softmax, Gumbel seed 0): cell(s) 'Gumbel' would average runs of different datasets; evaluate every run "
        "against the same val file, or pass --runs folders of one dataset only"
    ]
    assert not (sweep / "figures").exists()


def test_rows_of_different_train_files_are_not_compared(
    sweep: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    for seed in (0, 1, 2):
        _edit(sweep, f"activation=gumbel,seed={seed}", train=OTHER)
    mine = _digest(sweep, "train")[:12]
    assert _refusal(sweep, caplog, capsys) == (
        f"the 'demo' table mixes train annotation files (sha256 {OTHER[:12]} in Gumbel; {mine} in Sigmoid, "
        "Softmax): its rows would compare runs of different datasets; evaluate every run against the same train "
        "file, or pass --runs folders of one dataset only"
    )


def test_rows_of_another_dataset_option_may_read_other_files(sweep: Path) -> None:
    """As the sota table's LVIS v0.5 row beside its v1 rows: a table split by dataset compares files within an
    option only."""
    for seed in (0, 1, 2):
        (path,) = sweep.glob(f"*/activation=gumbel,seed={seed}/record.json")
        record = json.loads(path.read_text())
        record["choices"]["dataset"] = "lvis_v05"
        path.write_text(json.dumps(record))
        _edit(sweep, f"activation=gumbel,seed={seed}", train=OTHER, val=OTHER)
    spec = dataclasses.replace(
        get_spec("demo"), label_headers=("Activation", "Dataset"),
        rows=grid([("activation", (SIGMOID, SOFTMAX, GUMBEL)),
                   ("dataset", (Level("embedded", ("embedded",)), Level("LVIS v0.5", ("lvis_v05",))))]),
    )  # fmt: skip

    def provenance() -> Any:
        frame, _ = load_local_runs([sweep])
        runs, _ = select_experiment(frame, "demo")
        return check_provenance(aggregate(runs, spec))

    assert provenance().marks == {}
    _edit(sweep, "activation=gumbel,seed=1", val=_digest(sweep, "val"))  # within the v0.5 option: refused
    with pytest.raises(DatasetMismatchError, match=r"cell\(s\) 'Gumbel / LVIS v0.5' would average runs of differ"):
        provenance()


def test_runs_whose_numbers_are_not_shown_cannot_mix_datasets(sweep: Path) -> None:
    _edit(sweep, "activation=gumbel,seed=2", val=OTHER)  # failed: not averaged
    _edit(sweep, "activation=softmax,seed=2", train=OTHER)  # running: not averaged
    frame, _ = load_local_runs([sweep])
    table = make_table(frame, "demo")
    assert [line.marks for line in table.lines] == ["", "", ""]
    assert not any("fingerprint" in note for note in table.notes)


def test_runs_recorded_before_fingerprints_are_noted_not_refused(sweep: Path) -> None:
    _edit(sweep, "activation=sigmoid,seed=0", annotations=None)  # an older record
    _edit(sweep, "activation=gumbel,seed=1", annotations={"val": {"sha256": OTHER}})  # train unknown
    frame, _ = load_local_runs([sweep])
    with pytest.raises(DatasetMismatchError, match="mixes val annotation files"):
        make_table(frame, "demo")  # the known val digest still differs
    _edit(sweep, "activation=gumbel,seed=1", annotations=None)
    frame, _ = load_local_runs([sweep])
    assert make_table(frame, "demo").notes[-1] == (
        "2 of 6 runs have no annotation fingerprints (recorded before gol kept them), so their datasets could not "
        "be checked: Sigmoid, Gumbel"
    )


def test_cells_of_a_dirty_tree_or_another_commit_are_marked(sweep: Path) -> None:
    _edit(sweep, "activation=gumbel,seed=1", git_dirty=True)
    _edit(sweep, "activation=softmax,seed=0", git_commit="c0ffee" + "0" * 34)
    # An older record says "+dirty" in its commit instead of git_dirty.
    majority = _edit(sweep, "activation=sigmoid,seed=1", git_dirty=None)["git_commit"]
    _edit(sweep, "activation=sigmoid,seed=1", git_commit=f"{majority}+dirty")
    frame, _ = load_local_runs([sweep])
    table = make_table(frame, "demo")
    assert [line.marks for line in table.lines] == ["†", "*", "†"]
    assert table.notes[-2:] == (
        "† trained from a checkout with uncommitted changes: Sigmoid (run 1124ccae572cb90a, seed 1); Gumbel (run "
        "98dbdbd6c0043d10, seed 1)",
        f"* trained at another commit than most runs of the table ({majority[:12]}, 5 of 6): Softmax (run "
        "faf4c534415dbc47, seed 0 at c0ffee000000)",
    )
    markdown = render(table, "md")
    assert "| Sigmoid | ours (2 seeds) | 14.0 ± 0.2† |" in markdown
    assert "| Gumbel | ours (2 seeds, +1 failed) | **16.5 ± 0.2**† |" in markdown
    assert "| 13.1 ± 0.2* |" in markdown
    assert "\\textbf{16.5 $\\pm$ 0.2}$^{\\dagger}$" in render(table, "tex")
    assert render(table, "csv").splitlines()[2].split(",")[6:8] == ["false", "*"]
