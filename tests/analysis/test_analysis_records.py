"""Local run records and their W&B offline folders -> the analysis DataFrame."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis.errors import NoRunsError
from analysis.offline import find_wandb_run_dirs
from analysis.records import find_run_dirs, load_local_runs, load_per_category
from analysis.schema import COLUMNS, METRIC_COLUMNS

FIXTURES = Path(__file__).parent / "fixtures"


def _cell(experiment: str, cell: str) -> Path:
    (found,) = (FIXTURES / experiment).glob(f"*/{cell}")
    return found


def test_analysis_records_frame_follows_schema() -> None:
    frame, messages = load_local_runs([FIXTURES / "demo"])
    assert tuple(frame.columns) == COLUMNS
    assert len(frame) == 8
    assert frame["seed"].dtype == "Int64"
    assert all(frame[c].dtype == np.float64 for c in METRIC_COLUMNS)
    runs = frame.set_index("run_id")
    first = runs.loc["d5deae2541e75372"]
    assert first["run_dir"] == str(_cell("demo", "activation=sigmoid,seed=0").resolve())
    assert (
        first["activation"],
        first["loss"],
        first["detector"],
        first["dataset"],
        first["sampler"],
        first["schedule"],
    ) == ("sigmoid", "ce", "tiny", "embedded", "random", "demo")
    assert first["experiment"] == "demo" and first["state"] == "finished" and first["seed"] == 0
    assert first["normed_mask"] is False
    assert first["segm/AP"] == pytest.approx(0.1412) and first["bbox/AP"] == pytest.approx(0.1530)
    assert first["overrides"] == "activation=sigmoid seed=0"
    assert first["per_category_path"].endswith("activation=sigmoid,seed=0/per_category.json")
    assert first["wandb_dir"].startswith("/scratch/gol/outputs/multirun/") and first["wandb_run_dir"] is None
    running = runs.loc["29fd86258ecfbc65"]
    assert running["state"] == "running" and math.isnan(running["segm/AP"]) and running["iteration"] == 120
    failed = runs.loc["f7b5c0513f3d19bd"]
    assert failed["error"] == "FloatingPointError: loss is nan at iteration 87"
    assert runs.loc["7c3ed5e75966a263", "wandb_id"] is None  # logged without W&B
    # No W&B folder is committed: every tracked run is reported unpaired, in one line.
    assert len(messages) == 1 and messages[0].startswith("7 of 7 W&B-tracked runs have no W&B run folder")


def test_analysis_records_null_and_absent_metrics_are_nan() -> None:
    frame, _ = load_local_runs([FIXTURES / "activations"])
    run = frame.set_index("run_id").loc["0f2bac727c524de3"]
    assert math.isnan(run["segm/APf"]) and run["bbox/APf"] == pytest.approx(0.2770)


def test_analysis_records_missing_folder_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(NoRunsError, match="does not exist"):
        load_local_runs([tmp_path / "nope"])
    with pytest.raises(NoRunsError, match="no record.json found under"):
        load_local_runs([tmp_path])


def test_analysis_records_unreadable_record_is_reported(tmp_path: Path) -> None:
    shutil.copytree(_cell("demo", "activation=sigmoid,seed=0"), tmp_path / "0")
    shutil.copytree(_cell("demo", "activation=sigmoid,seed=1"), tmp_path / "1")
    (tmp_path / "1" / "record.json").write_text("{ not json")
    (tmp_path / "0" / "metrics.json").unlink()
    frame, messages = load_local_runs([tmp_path])
    assert list(frame["run_id"]) == ["d5deae2541e75372"]
    assert any("1: unreadable run record" in m for m in messages)
    assert any("finished run has no metrics.json" in m for m in messages)


def test_analysis_records_skip_wandb_and_accept_a_record_file(tmp_path: Path) -> None:
    run = tmp_path / "sweep" / "0"
    shutil.copytree(_cell("demo", "activation=sigmoid,seed=0"), run)
    stray = run / "wandb" / "offline-run-20250301_100000-x" / "files"
    stray.mkdir(parents=True)
    (stray / "record.json").write_text("{}")
    assert find_run_dirs(tmp_path) == [run.resolve()]
    assert find_run_dirs(run / "record.json") == [run.resolve()]


def test_analysis_per_category_table() -> None:
    frame, _ = load_local_runs([FIXTURES / "demo"])
    per_category = load_per_category(frame)
    assert len(per_category) == 6 * 8  # six finished runs with eight categories each
    harp = per_category[(per_category["run_id"] == "d5deae2541e75372") & (per_category["name"] == "harp")].iloc[0]
    assert harp["image_count"] == 1 and harp["frequency"] == "r" and math.isnan(harp["segm_AP"])


def test_analysis_offline_pairing_with_a_real_offline_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    sweep = tmp_path / "demo"
    shutil.copytree(FIXTURES / "demo", sweep)

    def cell(name: str) -> Path:
        (found,) = sweep.glob(f"*/{name}")
        return found

    # The sweep was copied away from the cluster: its real offline run sits in the run folder's wandb/.
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(project="gol", id="d5deae2541e75372", dir=str(cell("activation=sigmoid,seed=0")), mode="offline")
    run.finish()
    # A record whose wandb.dir (the run's files/ folder, as gol's tracker records it) exists where it says.
    elsewhere = tmp_path / "scratch" / "wandb" / "offline-run-20250301_100000-1124ccae572cb90a" / "files"
    elsewhere.mkdir(parents=True)
    record_file = cell("activation=sigmoid,seed=1") / "record.json"
    record = json.loads(record_file.read_text())
    record["wandb"]["dir"] = str(elsewhere)
    record_file.write_text(json.dumps(record))
    # Two requeued segments of another run; the newest is recorded.
    for stamp in ("20250301_100000", "20250302_090000"):
        (cell("activation=softmax,seed=0") / "wandb" / f"offline-run-{stamp}-faf4c534415dbc47").mkdir(parents=True)
    frame, messages = load_local_runs([sweep])
    by_id = frame.set_index("run_id")["wandb_run_dir"]
    assert Path(by_id["d5deae2541e75372"]).parent == (cell("activation=sigmoid,seed=0") / "wandb").resolve()
    assert any(Path(by_id["d5deae2541e75372"]).glob("run-d5deae2541e75372.wandb"))
    assert by_id["1124ccae572cb90a"] == str(elsewhere.parent.resolve())
    assert by_id["faf4c534415dbc47"].endswith("offline-run-20250302_090000-faf4c534415dbc47")
    assert by_id["7c3ed5e75966a263"] is None  # not tracked in W&B: not expected to pair
    assert len(messages) == 1
    assert messages[0].startswith("4 of 7 W&B-tracked runs have no W&B run folder")
    assert messages[0].endswith(": 97bee6c75628704f, 98dbdbd6c0043d10, f7b5c0513f3d19bd, 29fd86258ecfbc65")


def test_analysis_find_wandb_run_dirs_accepts_the_wandb_folder_itself(tmp_path: Path) -> None:
    folder = tmp_path / "wandb" / "run-20250301_100000-abc"
    (folder / "files").mkdir(parents=True)
    assert find_wandb_run_dirs("abc", tmp_path) == [folder.resolve()]
    assert find_wandb_run_dirs("abc", tmp_path / "wandb") == [folder.resolve()]
    assert find_wandb_run_dirs("abc", folder / "files") == [folder.resolve()]
    assert find_wandb_run_dirs("abc", tmp_path / "gone", tmp_path) == [folder.resolve()]
    assert find_wandb_run_dirs("ab", tmp_path) == []
