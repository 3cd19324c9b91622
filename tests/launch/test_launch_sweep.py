"""gol-sweep status and cells_to_run on a real Hydra multirun of the toy app, with hand-written run records."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from launch.slurm import SlurmUnavailableError
from launch.sweep import (
    cells_to_run,
    expand_sweep,
    expected_cells_from_experiment,
    expected_cells_from_multirun,
    format_status,
    main,
    sweep_status,
)
from launch.wait import run_wait, wait_for_sweep

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
METRICS = {
    "bbox": {"AP": 0.259, "APr": 0.18, "APc": 0.25, "APf": 0.3},
    "segm": {"AP": 0.253, "APr": 0.171, "APc": 0.242, "APf": None},
}
# (x, tag) -> what the cell's folder holds
LAYOUT = {
    ("1", "a"): "finished",
    ("1", "b"): "running",
    ("2", "a"): "failed",
    ("2", "b"): "stale",
    ("3", "a"): "no record",
    ("3", "b"): "no folder",
}


def _record(state: str, updated: datetime, error: str | None = None) -> dict[str, object]:
    return {
        "schema": 1, "run_id": "r", "state": state, "error": error, "experiment": None, "choices": {},
        "overrides": [], "seed": 0, "git_commit": None, "started_at": (NOW - timedelta(hours=5)).isoformat(),
        "updated_at": updated.isoformat(), "finished_at": None, "iteration": 120, "max_iter": 400,
        "skipped_steps": 0, "wandb": None,
    }  # fmt: skip


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real multirun (basic launcher) of x=1,2,3 x tag=a,b, then records written as LAYOUT says."""
    root = tmp_path_factory.mktemp("sweep")
    sweep = root / "multirun"
    app = Path(__file__).resolve().parent / "toy_app.py"
    done = subprocess.run(
        [sys.executable, str(app), "-m", "x=1,2,3", "tag=a,b", "hold_s=0",
         f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.override_dirname}"],
        cwd=root, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for (x, tag), kind in LAYOUT.items():
        cell = sweep / f"hold_s=0,tag={tag},x={x}"
        assert cell.is_dir(), sorted(p.name for p in sweep.iterdir())
        if kind == "finished":
            (cell / "record.json").write_text(json.dumps(_record("finished", NOW - timedelta(hours=1))))
            (cell / "metrics.json").write_text(json.dumps(METRICS))
        elif kind == "running":
            (cell / "record.json").write_text(json.dumps(_record("running", NOW - timedelta(minutes=2))))
        elif kind == "failed":
            error = "RuntimeError: loss is NaN at iteration 120; lower the learning rate\nTraceback ..."
            (cell / "record.json").write_text(json.dumps(_record("failed", NOW - timedelta(hours=2), error)))
        elif kind == "stale":
            (cell / "record.json").write_text(json.dumps(_record("running", NOW - timedelta(hours=3))))
        elif kind == "no folder":
            for f in sorted(cell.rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()
            cell.rmdir()
    return sweep


def _by_cell(statuses: list) -> dict[tuple[str, str], object]:
    out = {}
    for s in statuses:
        kv = dict(o.split("=", 1) for o in s.overrides)
        out[(kv["x"], kv["tag"])] = s
    return out


def test_expected_cells_follow_hydra_job_order(sweep_dir: Path) -> None:
    cells = expected_cells_from_multirun(sweep_dir)
    assert cells == [
        ("x=1", "tag=a", "hold_s=0"), ("x=1", "tag=b", "hold_s=0"), ("x=2", "tag=a", "hold_s=0"),
        ("x=2", "tag=b", "hold_s=0"), ("x=3", "tag=a", "hold_s=0"), ("x=3", "tag=b", "hold_s=0"),
    ]  # fmt: skip
    # Each cell is what Hydra wrote into the matching job's overrides.yaml.
    written = (sweep_dir / "hold_s=0,tag=a,x=1" / ".hydra" / "overrides.yaml").read_text().split()
    assert set(cells[0]) == {w for w in written if w != "-"}


def test_status_of_every_state(sweep_dir: Path) -> None:
    statuses = _by_cell(sweep_status(sweep_dir, live=set(), now=NOW))
    assert {k: s.state for k, s in statuses.items()} == {
        ("1", "a"): "finished", ("1", "b"): "running", ("2", "a"): "failed",
        ("2", "b"): "stale", ("3", "a"): "missing", ("3", "b"): "missing",
    }  # fmt: skip
    assert statuses[("1", "a")].detail == "segm AP 25.3 APr 17.1 APc 24.2 APf - | bbox AP 25.9"
    assert statuses[("2", "a")].detail == "RuntimeError: loss is NaN at iteration 120; lower the learning rate"
    assert "iteration 120/400" in statuses[("1", "b")].detail
    assert statuses[("3", "a")].detail == "folder without record.json"
    assert statuses[("3", "b")].run is None


def test_live_slurm_job_keeps_an_old_record_running(sweep_dir: Path) -> None:
    job_id = "41_3"
    hydra_yaml = sweep_dir / "hold_s=0,tag=b,x=2" / ".hydra" / "hydra.yaml"
    original = hydra_yaml.read_text()
    # The basic launcher numbers jobs; under submitit the job id is the SLURM one.
    hydra_yaml.write_text(original.replace("    id: '3'", f"    id: '{job_id}'", 1))
    try:
        assert f"id: '{job_id}'" in hydra_yaml.read_text()
        # A requeued array task waits as 41_[3-4]; it is still the cell's job.
        statuses = _by_cell(sweep_status(sweep_dir, live={"41_3", "41_4"}, now=NOW))
        assert statuses[("2", "b")].state == "running"
        assert _by_cell(sweep_status(sweep_dir, live={"41_2"}, now=NOW))[("2", "b")].state == "stale"
    finally:
        hydra_yaml.write_text(original)


def test_failed_record_of_a_live_job_is_a_requeued_cell(sweep_dir: Path) -> None:
    """A preempted job records failed when stopped; while SLURM holds it again (requeued) it counts as running."""
    hydra_yaml = sweep_dir / "hold_s=0,tag=a,x=2" / ".hydra" / "hydra.yaml"
    original = hydra_yaml.read_text()
    hydra_yaml.write_text(original.replace("    id: '2'", "    id: '41_2'", 1))
    try:
        assert "id: '41_2'" in hydra_yaml.read_text()
        status = _by_cell(sweep_status(sweep_dir, live={"41_2"}, now=NOW))[("2", "a")]
        assert (status.state, status.detail) == (
            "running", "job 41_2 queued or running again after: RuntimeError: loss is NaN at iteration 120; lower "
            "the learning rate",
        )  # fmt: skip
        assert _by_cell(sweep_status(sweep_dir, live=set(), now=NOW))[("2", "a")].state == "failed"
    finally:
        hydra_yaml.write_text(original)


def test_stale_after_is_configurable(sweep_dir: Path) -> None:
    statuses = _by_cell(sweep_status(sweep_dir, live=set(), now=NOW, stale_after=timedelta(minutes=1)))
    assert statuses[("1", "b")].state == "stale"


def test_cells_to_run_skips_finished_and_running(sweep_dir: Path) -> None:
    expected = expected_cells_from_multirun(sweep_dir)
    todo = cells_to_run(expected, sweep_dir, query_slurm=False, now=NOW)
    assert todo == [list(expected[i]) for i in (2, 3, 4, 5)]


def test_cells_to_run_of_a_new_sweep_is_everything(tmp_path: Path) -> None:
    expected = expand_sweep(["loss=ce,eql", "activation=gumbel"])
    assert cells_to_run(expected, tmp_path / "not-yet", query_slurm=False) == [
        ["loss=ce", "activation=gumbel"],
        ["loss=eql", "activation=gumbel"],
    ]


def test_experiment_file_defines_cells_and_matches_by_subset(sweep_dir: Path, tmp_path: Path) -> None:
    experiment = tmp_path / "toy_grid.yaml"
    experiment.write_text("# @package _global_\nhydra:\n  sweeper:\n    params:\n      x: 1,2,3,4\n      tag: a\n")
    cells = expected_cells_from_experiment(experiment)
    assert cells == [("x=1", "tag=a"), ("x=2", "tag=a"), ("x=3", "tag=a"), ("x=4", "tag=a")]
    statuses = sweep_status(sweep_dir, cells, live=set(), now=NOW)
    assert [s.state for s in statuses[:4]] == ["finished", "failed", "missing", "missing"]
    # Folders of the sweep outside the experiment's cells are still listed.
    assert len(statuses) == 4 + 2


def test_experiment_without_sweep_is_refused(tmp_path: Path) -> None:
    single = tmp_path / "single.yaml"
    single.write_text("# @package _global_\nseed: 1\n")
    with pytest.raises(ValueError, match=r"no hydra\.sweeper\.params"):
        expected_cells_from_experiment(single)


def test_cli_prints_one_line_per_cell(sweep_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(sweep_dir), "--stale-after-min", "1000000000"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["state", "cell", "details"]
    assert len(out) == 1 + 6 + 1
    assert out[-1].startswith("6 cells: 1 finished, 2 running, 1 failed, 2 missing")
    assert "common overrides: hold_s=0" in out[-1]
    assert any(line.startswith("finished  x=1 tag=a") for line in out)


def test_cli_refuses_a_folder_that_is_not_a_sweep(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert main(["status", str(tmp_path)]) == 2
    assert "multirun.yaml not found; pass a Hydra multirun folder or --experiment <file>" in caplog.text


def test_format_status_without_cells() -> None:
    assert format_status([]).splitlines()[-1] == "0 cells"


def _path_with(tmp_path: Path, squeue: str | None) -> str:
    """A PATH whose ``squeue`` is the given shell script (None: no squeue at all, a machine without SLURM)."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    if squeue is not None:
        (folder / "squeue").write_text(f"#!/bin/sh\n{squeue}\n")
        (folder / "squeue").chmod(0o755)
    return str(folder)


def test_wait_returns_when_nothing_runs_and_says_which_cells_did_not_finish(
    sweep_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(sweep_dir, sweep)
    stale = sweep / "hold_s=0,tag=b,x=2"
    (stale / "failures").mkdir()
    (stale / "failures" / "rank3.txt").write_text("ValueError: cannot decode image file /data/x.jpg\n")
    monkeypatch.setenv("PATH", _path_with(tmp_path, None))  # records only: the 2025 "running" record is stale now
    assert run_wait(sweep, None, stale_after=timedelta(minutes=30)) == 1
    table = {" ".join(line.split()[1:3]): line for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert table["x=1 tag=a"].startswith("finished")
    assert table["x=2 tag=b"].startswith("stale") and table["x=2 tag=b"].endswith(
        "no live SLURM job; process 3 failed: ValueError: cannot decode image file /data/x.jpg"
    )


def test_wait_keeps_polling_while_squeue_does_not_answer(
    sweep_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _path_with(tmp_path, "echo 'slurm_load_jobs error: Socket timed out' >&2; exit 1"))
    with pytest.raises(SlurmUnavailableError, match="squeue did not answer 10 times in a row"):
        wait_for_sweep(sweep_dir, stale_after=timedelta(minutes=30), first_poll_s=0.001, max_poll_s=0.001)
