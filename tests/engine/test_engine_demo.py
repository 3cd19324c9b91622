"""The quick start's `make demo`, typed in a fresh copy of the checkout: three activations, then their table."""

import json
import subprocess
import time

import pytest

from tests_support import checkout_copy, user_env

ACTIVATIONS = ("sigmoid", "softmax", "gumbel")


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_make_demo_learns_and_tabulates(tmp_path):
    checkout = checkout_copy(tmp_path / "gol")
    env = {k: v for k, v in user_env(tmp_path).items() if not k.startswith(("MAKE", "MFLAGS"))}  # not under make
    start = time.monotonic()
    done = subprocess.run(["make", "demo"], cwd=checkout, env=env, capture_output=True, text=True, timeout=1400)
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-4000:]
    assert "pip install" not in done.stdout  # the venv was up to date: nothing reinstalled
    sweep = checkout / "outputs" / "sweeps" / "demo"
    records = {json.loads(p.read_text())["choices"]["activation"]: p.parent for p in sweep.glob("*/record.json")}
    assert set(records) == set(ACTIVATIONS)
    for activation, run_dir in records.items():
        record = json.loads((run_dir / "record.json").read_text())
        assert record["state"] == "finished" and record["experiment"] == "demo"
        bbox = json.loads((run_dir / "metrics.json").read_text())["bbox"]
        # The models clearly learn: frequent categories are found (an untrained model scores ~0 here).
        assert bbox["APf"] >= 0.2, f"{activation}: bbox {bbox}"
    for header in ("AP", "APr", "APc", "APf", "APb", "Sigmoid", "Softmax", "Gumbel"):
        assert header in done.stdout
    print(f"make demo: {seconds:.0f} s")
