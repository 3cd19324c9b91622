"""Launch planning without a cluster: fill-in states, the other-experiment refusal and the dry run, first as
functions on hand-written run folders, then through `gol-train -m` (refusals happen before any SLURM query)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from launch.cost import CellCost
from launch.plan import (
    BatchSplitError,
    EstimateError,
    JobCell,
    SweepFolderError,
    cell_iterations,
    check_batch_split,
    check_experiment,
    dry_run_report,
    num_train_images,
    plan_cells,
    seconds_per_iteration,
    summary,
)
from tests_support import weights_folder

GolTrain = Callable[..., Any]  # the gol_train fixture (conftest.py): starts gol-train, .finish() waits
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def make_run(folder: Path, overrides: list[str], state: str | None, *, experiment: str | None = None,
             updated: datetime = NOW - timedelta(hours=2)) -> Path:  # fmt: skip
    """A run folder as Hydra and the engine leave it: .hydra/overrides.yaml, record.json (unless state is None)."""
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra" / "overrides.yaml")
    if state is not None:
        error = "RuntimeError: boom" if state == "failed" else None
        record = {"schema": 1, "run_id": "r", "state": state, "error": error, "experiment": experiment,
                  "updated_at": updated.isoformat(), "iteration": 3, "max_iter": 40}  # fmt: skip
        (folder / "record.json").write_text(json.dumps(record))
    if state == "finished":
        (folder / "metrics.json").write_text(json.dumps({"segm": {"AP": 0.25}, "bbox": {"AP": 0.26}}))
    return folder


def cell(sweep: Path, name: str, num: int = 0, experiment: str | None = "losses") -> JobCell:
    return JobCell(job_num=num, overrides=tuple(name.split(",")), folder=sweep / name, experiment=experiment)


def test_plan_skips_finished_and_running_cells(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    make_run(sweep / "loss=ce", ["loss=ce"], "finished", experiment="losses")
    make_run(sweep / "loss=eql", ["loss=eql"], "running", experiment="losses", updated=NOW - timedelta(minutes=1))
    make_run(sweep / "loss=drop", ["loss=drop"], "failed", experiment="losses")
    make_run(sweep / "loss=fed", ["loss=fed"], "running", experiment="losses")  # 2 h without update: stale
    make_run(sweep / "loss=see", ["loss=see"], None)  # the job started, no record yet
    names = ["loss=ce", "loss=eql", "loss=drop", "loss=fed", "loss=see", "loss=gol"]
    planned = plan_cells([cell(sweep, n, i) for i, n in enumerate(names)], sweep, query_slurm=False, now=NOW)
    assert [(p.state, p.submit) for p in planned] == [
        ("finished", False), ("running", False), ("failed", True), ("stale", True), ("missing", True),
        ("missing", True),
    ]  # fmt: skip
    assert planned[0].detail == "segm AP 25.0 APr - APc - APf - | bbox AP 26.0"
    assert planned[5].detail == "no run folder"
    assert summary(planned) == "6 cells: 1 finished, 1 running, 1 failed, 1 stale, 2 missing; 4 to submit"
    # A shorter stale window makes the recently updated running cell stale too.
    again = plan_cells([cell(sweep, "loss=eql")], sweep, query_slurm=False, now=NOW, stale_after=timedelta(0))
    assert again[0].state == "stale" and again[0].submit


def test_cell_whose_folder_is_known_only_at_run_time_is_submitted(tmp_path: Path) -> None:
    unknown = JobCell(job_num=0, overrides=("x=1",), folder=None, experiment=None)
    (planned,) = plan_cells([unknown], tmp_path, query_slurm=False, now=NOW)
    assert planned.submit and planned.cell.name(tmp_path) == "x=1"


def test_other_experiment_is_refused(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    check_experiment(sweep, {"demo"})  # no folder yet: nothing to refuse
    make_run(sweep / "loss=ce", ["loss=ce"], "finished", experiment="losses")
    make_run(sweep / "loss=eql", ["loss=eql"], None)  # no record: says nothing about its experiment
    check_experiment(sweep, {"losses"})
    with pytest.raises(SweepFolderError) as refused:
        check_experiment(sweep, {"demo"})
    message = str(refused.value)
    assert "\n" not in message
    assert message == (
        f"sweep folder {sweep} holds 1 run(s) of experiment 'losses' (e.g. loss=ce) but this launch is "
        "experiment 'demo'; launch into another folder with hydra.sweep.dir=<path>"
    )
    with pytest.raises(SweepFolderError, match="but this launch is an ad-hoc sweep \\(no experiment\\);"):
        check_experiment(sweep, {None})


def test_schedule_length_as_the_engine_computes_it() -> None:
    one_x = OmegaConf.create({"epochs": 12, "max_iter": None, "steps": [8, 11], "ims_per_batch": 16})
    assert cell_iterations(one_x, images=100_170) == 12 * (100_170 // 16)
    smoke = OmegaConf.create({"epochs": None, "max_iter": 40, "steps": [30], "ims_per_batch": 2})
    assert cell_iterations(smoke, images=120) == 40


def test_estimates_come_from_the_config_or_name_the_fix() -> None:
    estimates = {"lvis_v1": 100_170}
    assert num_train_images({"num_train": 120}, "embedded", estimates) == 120
    assert num_train_images({"train_ann": "x.json"}, "lvis_v1", estimates) == 100_170
    with pytest.raises(EstimateError, match=r"dataset 'coco'; add \+hydra\.launcher\.num_train_images\.coco=N$"):
        num_train_images({"train_ann": "x.json"}, "coco", estimates)
    assert seconds_per_iteration("tiny", {"tiny": 0.15}) == 0.15
    with pytest.raises(EstimateError, match=r"detector 'htc'; add \+hydra\.launcher\.seconds_per_iter\.htc=S "):
        seconds_per_iteration("htc", {"tiny": 0.15})


def test_global_batch_must_split_over_the_processes_of_a_job() -> None:
    check_batch_split("loss=ce", 16, 4)
    with pytest.raises(BatchSplitError, match=r"^cell loss=ce: schedule\.ims_per_batch=16 .* over the 3 processes"):
        check_batch_split("loss=ce", 16, 3)


def test_dry_run_report(tmp_path: Path) -> None:
    make_run(tmp_path / "loss=ce", ["loss=ce"], "finished")
    planned = plan_cells([cell(tmp_path, "loss=ce", 0), cell(tmp_path, "loss=eql", 1)], tmp_path,
                         query_slurm=False, now=NOW)  # fmt: skip
    report = dry_run_report(planned, [CellCost("loss=eql", 90_000, 0.6, 4)], sweep_dir=tmp_path, request="4 GPUs")
    lines = report.splitlines()
    assert lines[2].split()[:3] == ["finished", "loss=ce", "skip"]
    assert lines[3].split()[:3] == ["missing", "loss=eql", "submit"]
    assert "2 cells: 1 finished, 1 missing; 1 to submit" in lines and "1 job(s), each: 4 GPUs" in lines
    assert any(line.split() == ["loss=eql", "90,000", "0.6", "4", "15.0", "60.0"] for line in lines)
    assert lines[-2].startswith("GPU-hours: 60.0 = iterations x hydra.launcher.seconds_per_iter x GPUs per job")
    assert lines[-1] == "nothing queued (hydra.launcher.dry_run=true)"


# -- through gol-train: refused or dry launches queue nothing, so they need no cluster --------------------------


def test_gol_train_refuses_a_sweep_folder_of_another_experiment(tmp_path: Path, gol_train: GolTrain) -> None:
    sweep = tmp_path / "outputs" / "sweeps" / "demo-smoke"  # where `experiment=demo scale=smoke` goes
    make_run(sweep / "loss=ce", ["loss=ce"], "finished", experiment="losses")
    (sweep / "multirun.yaml").write_text("# the earlier launch's\n")
    done = gol_train("experiment=demo", "scale=smoke", "hydra/launcher=local", cwd=tmp_path).finish()
    code, out, err = done.returncode, done.stdout, done.stderr
    assert code == 2, err[-3000:]
    errors = [line for line in (out + err).splitlines() if "holds 1 run(s)" in line]
    assert len(errors) == 1 and "Traceback" not in err
    assert errors[0].endswith(
        "of experiment 'losses' (e.g. loss=ce) but this launch is experiment 'demo'; "
        "launch into another folder with hydra.sweep.dir=<path>; nothing run"
    )
    assert (sweep / "multirun.yaml").read_text() == "# the earlier launch's\n"  # refused before Hydra rewrites it
    assert sorted(p.name for p in sweep.iterdir()) == ["loss=ce", "multirun.yaml"]


def test_gol_train_dry_run_of_a_paper_table(tmp_path: Path, gol_train: GolTrain) -> None:
    """schedule_sampler: 12 cells on LVIS v1 with the paper's 4-GPU jobs; SLURM cannot be asked here (an empty
    SLURM_CONF, or no SLURM at all), so the request is reported unchecked and the dry run still prints."""
    (tmp_path / "slurm.conf").write_text("")
    sweep = tmp_path / "outputs" / "sweeps" / "schedule_sampler"
    weights = weights_folder(tmp_path / "weights")  # the user's GOL_WEIGHTS with the ImageNet files
    done = gol_train(
        "experiment=schedule_sampler", "hydra/launcher=slurm", "hydra.launcher.dry_run=true",
        "hydra.launcher.partition=gpu", cwd=tmp_path, env={"SLURM_CONF": str(tmp_path / "slurm.conf"), **weights},
    ).finish()  # fmt: skip
    code, stdout, err = done.returncode, done.stdout, done.stderr
    assert code == 0, err[-3000:]
    out = [line for line in stdout.splitlines() if not line.startswith("[")]  # the report, without log lines
    assert out[0] == f"dry run: sweep folder {sweep}"
    assert "12 cells: 12 missing; 12 to submit" in out
    assert (
        "12 job(s), each: 1 node(s) x 4 task(s), 4 GPU(s), 32 CPU(s), 128 GB, 1440 min on partition gpu "
        "(not checked: SLURM unavailable)"
    ) in out
    # 1x: 12 epochs x (100,170 images // 16) iterations x 0.6 s x 4 GPUs; 2x twice that.
    one_x = next(line for line in out if line.startswith("activation=sigmoid,sampler=random,schedule=1x "))
    assert one_x.split()[1:] == ["75,120", "0.6", "4", "12.5", "50.1"]
    assert out[-3].split() == ["total", "(12", "cells)", "1,352,160", "225.4", "901.4"]
    assert out[-1] == "nothing queued (hydra.launcher.dry_run=true)"
    # Without SLURM's tools, or with them but no cluster to ask: either way one line says why.
    assert re.search(r"SLURM request not checked: '?scontrol", err), err[-2000:]  # a log line: stderr
    assert not (tmp_path / "outputs").exists()  # no trace of the dry run


def test_gol_train_refuses_a_cell_the_app_would_refuse(tmp_path: Path, gol_train: GolTrain, data_root: Path) -> None:
    """A cell the training app refuses (softmax with EQL) is left out with one line; the other cells still run."""
    done = gol_train("-m", "activation=sigmoid,softmax", "loss=eql", "detector=tiny", "scale=smoke", "logger=none",
                     "hydra/launcher=local", cwd=tmp_path, env={"GOL_DATA": str(data_root)}).finish()  # fmt: skip
    out, err = done.stdout, done.stderr
    assert done.returncode != 0  # Hydra reports the refused cell as a failed job at the end
    refusal = [line for line in (out + err).splitlines() if re.search(r"refusing \S*activation=softmax\S*: ", line)]
    assert len(refusal) == 1 and "activation=softmax cannot be used with loss=EQLLoss" in refusal[0], out + err
    (sweep,) = (tmp_path / "outputs" / "multirun").iterdir()  # an ad-hoc sweep's fresh folder
    records = [json.loads(r.read_text()) for r in sweep.glob("*/record.json")]
    assert [(r["choices"]["activation"], r["state"]) for r in records] == [("sigmoid", "finished")]


def test_gol_train_refuses_a_launch_with_nothing_left_to_run(tmp_path: Path, gol_train: GolTrain) -> None:
    done = gol_train("-m", "activation=softmax", "loss=eql", "hydra/launcher=local", cwd=tmp_path).finish()
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in (done.stdout + done.stderr).splitlines() if "every cell to run is refused" in line]
    assert len(lines) == 1 and lines[0].endswith("nothing queued") and "Traceback" not in done.stderr
    assert not (tmp_path / "outputs").exists()


def test_gol_sweep_plan_is_the_dry_run(tmp_path: Path) -> None:
    """`gol-sweep plan OVERRIDES` prints exactly what `gol-train OVERRIDES hydra.launcher.dry_run=true` prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOL_", "WANDB_", "SLURM_"))}
    scripts = Path(sys.executable).parent
    args = ["experiment=losses", "hydra/launcher=slurm"]
    missing = subprocess.run([str(scripts / "gol-sweep"), "plan", *args], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    # No ImageNet file: refused before anything is queued, in one line naming the file and where it comes from.
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "resnet50-0676ba61.pth (torchvision's ResNet50_Weights.IMAGENET1K_V1" in missing.stderr.splitlines()[-1]
    assert "detector.weights_backbone=null" in missing.stderr.splitlines()[-1]
    env.update(weights_folder(tmp_path / "weights"))
    plan = subprocess.run([str(scripts / "gol-sweep"), "plan", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    dry = subprocess.run([str(scripts / "gol-train"), *args, "hydra.launcher.dry_run=true"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert plan.returncode == dry.returncode == 0, plan.stderr[-2000:] + dry.stderr[-2000:]
    assert plan.stdout == dry.stdout and "6 cells: 6 missing; 6 to submit" in plan.stdout
    assert not (tmp_path / "outputs").exists()
    local = subprocess.run([str(scripts / "gol-sweep"), "plan", "experiment=losses"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert local.returncode == 2 and "Traceback" not in local.stderr
    assert local.stderr.strip().endswith("add hydra/launcher=slurm (or local_cluster, local)")


@pytest.mark.parametrize(
    "experiment", ["activations", "losses", "gol_ablation", "lvis_v05", "schedule_sampler", "sota", "beyond"]
)
def test_every_paper_table_plans_as_a_user_types_it(tmp_path: Path, experiment: str) -> None:
    """`gol-sweep plan experiment=X hydra/launcher=slurm` (the dry run) for every paper table: the per-cell batch
    sizes the experiments pick by ``${hydra:runtime.choices...}`` resolve while planning, as in the job itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOL_", "WANDB_", "SLURM_"))}
    env.update(weights_folder(tmp_path / "weights"))
    (tmp_path / "slurm.conf").write_text("")
    env["SLURM_CONF"] = str(tmp_path / "slurm.conf")
    gol_sweep = Path(sys.executable).parent / "gol-sweep"
    plan = subprocess.run([str(gol_sweep), "plan", f"experiment={experiment}", "hydra/launcher=slurm"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert plan.returncode == 0 and "Traceback" not in plan.stderr, plan.stderr[-3000:]
    assert plan.stdout.splitlines()[-1] == "nothing queued (hydra.launcher.dry_run=true)"
    if experiment == "activations":  # the X101 softmax cell runs 4 x 1 images per step, so 4x the iterations
        x101 = next(
            line for line in plan.stdout.splitlines() if line.startswith("activation=softmax,detector=maskrcnn_x101")
        )
        assert x101.split()[1:3] == ["300,504", "1.1"]
