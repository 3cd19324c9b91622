"""One cell end to end through `python -m gol.train`: the run record, W&B offline files, refusal, resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from tests_support import run_train

from gol import checkpoint
from gol.tracking import run_id_for

METRIC_KEYS = {"AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"}


def smoke(tmp_path, data_root, run_dir, *extra):
    # scale=smoke fixes the dataset to the embedded one; a cell that picks another dataset takes the smoke schedule.
    scale = "schedule=smoke" if any(e.startswith("dataset=") for e in extra) else "scale=smoke"
    return [scale, f"paths.root={tmp_path}", f"paths.data_root={data_root}", f"hydra.run.dir={run_dir}", *extra]


def test_smoke_run_writes_the_local_record_and_offline_wandb(tmp_path, data_root):
    run_dir = tmp_path / "run"
    done = run_train(smoke(tmp_path, data_root, run_dir, "activation=gumbel"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rec = json.loads((run_dir / "record.json").read_text())
    assert rec["state"] == "finished" and rec["error"] is None
    assert rec["choices"]["activation"] == "gumbel" and rec["choices"]["detector"] == "tiny"
    assert rec["iteration"] == rec["max_iter"] == 4 and rec["run_id"] == run_id_for(run_dir)
    assert rec["git_commit"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"bbox", "segm"}
    for values in metrics.values():
        assert set(values) == METRIC_KEYS
        assert all(v is None or 0.0 <= v <= 1.0 for v in values.values())
    per_category = json.loads((run_dir / "per_category.json").read_text())["categories"]
    assert {row["frequency"] for row in per_category} == {"r", "c", "f"}
    assert (run_dir / "config.yaml").read_text().count("_target_") >= 5
    # Every log period (and the last iteration) leaves a line with the losses, the lr and where the time went.
    last = [line for line in (run_dir / "train.log").read_text().splitlines() if "iteration 4/4: loss " in line]
    assert len(last) == 1 and "loss_classifier " in last[0] and "waiting for data " in last[0], last
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    wandb_runs = list((run_dir / "wandb").glob(f"offline-run-*-{rec['run_id']}"))
    assert len(wandb_runs) == 1 and rec["wandb"]["mode"] == "offline"
    assert (wandb_runs[0] / f"run-{rec['run_id']}.wandb").stat().st_size > 0


def test_a_finished_folder_is_refused_and_left_untouched(tmp_path, data_root):
    run_dir = tmp_path / "run"
    assert run_train(smoke(tmp_path, data_root, run_dir, "logger=none"), cwd=tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in run_dir.glob("*.json")}
    again = run_train(smoke(tmp_path, data_root, run_dir, "logger=none"), cwd=tmp_path)
    assert again.returncode != 0
    assert "already holds a finished run" in again.stderr
    assert {p.name: p.read_bytes() for p in run_dir.glob("*.json")} == before


@pytest.mark.parametrize(
    "args,message",
    [
        (["activation=softmax", "loss=eql"], "valid pairs"),
        (["dataset=lvis_v1"], "annotation file not found"),
        (["detector.weights=/nonexistent/tiny.pt"], "/nonexistent/tiny.pt"),
        (["schedule.max_itr=3"], "max_itr"),
        (["schedule.lr=-1"], "schedule.lr must be positive, got -1.0"),
        (["device=cuda:7"], "device='cuda:7' but "),
        (["loss=focal"], "Available options"),
    ],
)
def test_bad_input_gets_a_clear_error_and_no_finished_record(tmp_path, data_root, args, message):
    run_dir = tmp_path / "run"
    done = run_train(smoke(tmp_path, data_root, run_dir, "logger=none", *args), cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    record = run_dir / "record.json"
    assert not record.exists() or json.loads(record.read_text())["state"] == "failed"


def _weights(run_dir):
    return checkpoint.load(run_dir / "checkpoints" / "last.pt")["model"]


def test_a_killed_run_resumes_to_the_same_weights(tmp_path, data_root):
    """CPU, fixed seed: kill a run after a checkpoint, restart it in its folder, compare with an uninterrupted run."""
    args = ["logger=none", "schedule.max_iter=8", "schedule.steps=[6]", "schedule.checkpoint_period=2", "num_workers=0"]
    straight = tmp_path / "straight"
    assert run_train(smoke(tmp_path, data_root, straight, *args), cwd=tmp_path).returncode == 0

    interrupted = tmp_path / "interrupted"
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gol.train", *smoke(tmp_path, data_root, interrupted, *args)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while checkpoint.latest(interrupted / "checkpoints") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((interrupted / "record.json").read_text())
    assert state["state"] == "running" and state["iteration"] < 8, "the run ended before it could be interrupted"

    resumed = run_train(smoke(tmp_path, data_root, interrupted, *args), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in (interrupted / "train.log").read_text()
    a, b = _weights(straight), _weights(interrupted)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    assert json.loads((straight / "metrics.json").read_text()) == json.loads((interrupted / "metrics.json").read_text())


def test_gol_eval_on_a_run_reproduces_its_metrics(tmp_path, data_root):
    run_dir = tmp_path / "run"
    assert run_train(smoke(tmp_path, data_root, run_dir, "logger=none"), cwd=tmp_path).returncode == 0
    out = tmp_path / "again.json"
    done = subprocess.run([sys.executable, "-m", "gol.evaluation.cli", "--run", str(run_dir), "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(out.read_text()) == json.loads((run_dir / "metrics.json").read_text())
