"""activation=aglu through the engine: its lambda and kappa train with the detector, appear in the local record
(train.log) and W&B every log period, are restored exactly on resume and are used by ``gol-eval --run``; out of
range values are refused in one line before anything is built."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gol import checkpoint
from gol.build import build_components
from gol.data import collate
from gol.optim import build_optimizer
from tests_support import compose_train, run_train


def _train(folder: Path, data_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return run_train(["scale=smoke", *args], cwd=folder, env={"GOL_DATA": str(data_root)})


def test_lambda_and_kappa_train_are_logged_and_score_the_evaluation(tmp_path: Path, data_root: Path) -> None:
    done = _train(tmp_path, data_root, "activation=aglu", "loss=droploss", "activation.init_lambda=0.5")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    state = checkpoint.load(run_dir / "checkpoints" / "last.pt")["model"]
    keys = [k for k in state if k.endswith(("activation_params.lambda_param", "activation_params.kappa_param"))]
    assert len(keys) == 2, keys  # one loss in Mask R-CNN: registered once
    lam = float(next(state[k] for k in keys if k.endswith("lambda_param")))
    kappa = float(next(state[k] for k in keys if k.endswith("kappa_param")))
    assert lam != 0.5 and kappa != 1.0, "the activation parameters did not train"
    # the local record: one train.log line per log period (1 in the smoke schedule) with both values
    lines = [line for line in (run_dir / "train.log").read_text().splitlines() if re.search(r"iteration \d+/4:", line)]
    assert len(lines) == 4 and all("aglu_lambda " in line and "aglu_kappa " in line for line in lines), lines
    last = lines[-1]
    assert float(last.split("aglu_lambda ")[1].split(",")[0]) == pytest.approx(lam, rel=1e-4)
    assert float(last.split("aglu_kappa ")[1].split(",")[0]) == pytest.approx(kappa, rel=1e-4)
    rec = json.loads((run_dir / "record.json").read_text())
    (wandb_run,) = (run_dir / "wandb").glob(f"offline-run-*-{rec['run_id']}")
    logged = (wandb_run / f"run-{rec['run_id']}.wandb").read_bytes()
    assert b"train/aglu_lambda" in logged and b"train/aglu_kappa" in logged
    # gol-eval on the finished run rebuilds the activation and loads the learned values: the same metrics
    gol_eval = Path(sys.executable).with_name("gol-eval")
    again = subprocess.run(
        [str(gol_eval), "--run", str(run_dir), "--out", str(tmp_path / "again.json")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads((run_dir / "metrics.json").read_text())


def test_resume_restores_lambda_kappa_and_their_momentum_exactly(tmp_path: Path, data_root: Path) -> None:
    """Two steps, a checkpoint, two more, against a fresh model restored from the checkpoint: identical."""
    cfg = compose_train(["scale=smoke", "activation=aglu", "loss=droploss", f"paths.data_root={data_root}"], tmp_path)

    def build() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        torch.manual_seed(0)
        model = build_components(cfg).model.train()
        optimizer, scheduler = build_optimizer(model, cfg.schedule, steps=[3])
        return model, optimizer, scheduler

    def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
             batch: tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]) -> None:  # fmt: skip
        total = sum(model(*batch).values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        scheduler.step()

    model, optimizer, scheduler = build()
    data = build_components(cfg).data
    batches = [collate([data.train[i] for i in range(j, j + 2)]) for j in range(0, 8, 2)]
    assert len(optimizer.param_groups) == 2 and optimizer.param_groups[1]["weight_decay"] == 0.0
    for batch in batches[:2]:
        step(model, optimizer, scheduler, batch)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    saved = checkpoint.capture(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                               sampler={"epoch": 0, "position": 4}, iteration=2, skipped_steps=0)  # fmt: skip
    path = checkpoint.save(saved, tmp_path / "ckpt", iteration=2)
    for batch in batches[2:]:
        step(model, optimizer, scheduler, batch)

    resumed, optimizer2, scheduler2 = build()
    checkpoint.restore(checkpoint.load(path), model=resumed, optimizer=optimizer2, scheduler=scheduler2, scaler=scaler)
    for batch in batches[2:]:
        step(resumed, optimizer2, scheduler2, batch)
    a, b = model.state_dict(), resumed.state_dict()
    names = [k for k in a if "activation_params" in k]
    assert len(names) == 2 and all(torch.equal(a[k], b[k]) for k in names)
    assert all(torch.equal(a[k], b[k]) for k in a if torch.is_tensor(a[k]))


@pytest.mark.parametrize(
    "args,message",
    [
        (["activation.init_lambda=0"], "activation.init_lambda must be a positive finite number, got 0.0"),
        (["activation.init_kappa=-1"], "activation.init_kappa must be a positive finite number, got -1.0"),
        (
            ["activation.init_lambda=0.1", "activation.lambda_min=0.5"],
            "init_lambda=0.1 is below activation.lambda_min=0.5",
        ),
        (["loss=seesaw"], "activation=aglu cannot be used with loss=SeesawLoss"),
    ],
)
def test_bad_aglu_input_is_one_line_before_training(tmp_path: Path, data_root: Path, args: list[str], message: str):
    done = _train(tmp_path, data_root, "logger=none", "activation=aglu", *args)
    assert done.returncode != 0 and message in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("outputs/runs/*/checkpoints/*.pt"))
