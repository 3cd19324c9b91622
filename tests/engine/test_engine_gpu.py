"""The engine on CUDA: a smoke cell trains with AMP and pinned loading, evaluates, and records (GPU machines only)."""

from __future__ import annotations

import json

import pytest
import torch

from gol.bench import train_step
from tests_support import run_train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_smoke_cell_trains_with_amp_on_cuda(tmp_path, data_root):
    args = ["scale=smoke", "logger=none", "device=cuda", "schedule.amp=true", "activation=gumbel", "loss=droploss"]
    done = run_train(args, cwd=tmp_path, env={"GOL_DATA": str(data_root)})
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    rec = json.loads((run_dir / "record.json").read_text())
    assert rec["state"] == "finished" and rec["skipped_steps"] == 0
    assert set(json.loads((run_dir / "metrics.json").read_text())) == {"bbox", "segm", "eval"}


def test_train_step_benchmark_on_cuda(tmp_path):
    report = train_step.run(size="smoke", root=tmp_path, device="cuda", amp=True, profile_top=5)
    assert report["amp"] is True and report["nonfinite_steps"] == {"gol": 0, "bare": 0}
    assert "device_ms" in report["profile"]["phases_ms"]["forward"]
