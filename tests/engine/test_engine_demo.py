"""The quick start's demo sweep end to end, as `make demo` runs it: three activations, then their table."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests_support import run_train

ACTIVATIONS = ("sigmoid", "softmax", "gumbel")


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_demo_sweep_learns_and_tabulates(tmp_path, data_root):
    sweep = tmp_path / "demo"
    done = run_train(["experiment=demo", f"hydra.sweep.dir={sweep}", f"paths.root={tmp_path}",
                      f"paths.data_root={data_root}"], cwd=tmp_path, timeout=1400)
    assert done.returncode == 0, done.stderr[-4000:]
    records = {json.loads(p.read_text())["choices"]["activation"]: p.parent for p in sweep.glob("*/record.json")}
    assert set(records) == set(ACTIVATIONS)
    for activation, run_dir in records.items():
        record = json.loads((run_dir / "record.json").read_text())
        assert record["state"] == "finished" and record["experiment"] == "demo"
        bbox = json.loads((run_dir / "metrics.json").read_text())["bbox"]
        # The models clearly learn: frequent categories are found (an untrained model scores ~0 here).
        assert bbox["APf"] >= 0.2, f"{activation}: bbox {bbox}"
    gol_tables = Path(sys.executable).with_name("gol-tables")  # the console script, as `make demo` calls it
    table = subprocess.run([str(gol_tables), "--runs", str(sweep), "--experiment", "demo", "--format", "md"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    for header in ("AP", "APr", "APc", "APf", "APb", "Sigmoid", "Softmax", "Gumbel"):
        assert header in table.stdout
