"""Every paper-table experiment runs end to end at smoke scale (embedded dataset, tiny detector), typed as a user
types it in a fresh folder: `gol-train experiment=NAME scale=smoke`."""

import json
from pathlib import Path

import pytest

from gol.config import CONF_DIR
from launch.sweep import expected_cells_from_experiment, sweep_status
from tests_support import run_train

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml") if p.stem != "demo")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_at_smoke_scale(name, tmp_path):
    done = run_train([f"experiment={name}", "scale=smoke", "logger=none"], cwd=tmp_path, timeout=850)
    assert done.returncode == 0, done.stderr[-4000:]
    sweep = tmp_path / "outputs" / "sweeps" / f"{name}-smoke"  # the folder the README documents
    records = [json.loads(p.read_text()) for p in sweep.glob("*/record.json")]
    full_cells = expected_cells_from_experiment(Path(CONF_DIR) / "experiment" / f"{name}.yaml")
    # Detector axes collapse to the tiny detector at smoke scale; every other axis keeps its cells.
    distinct = {tuple(o for o in cell if not o.startswith("detector=")) for cell in full_cells}
    assert len(records) == len(distinct)
    assert all(r["state"] == "finished" and r["experiment"] == name for r in records)
    assert all(r["choices"]["detector"] == "tiny" and r["choices"]["dataset"] == "embedded" for r in records)
    assert {s.state for s in sweep_status(sweep, query_slurm=False)} == {"finished"}  # as `gol-sweep status` sees it
