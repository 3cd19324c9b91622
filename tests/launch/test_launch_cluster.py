"""The toy Hydra app through the local_cluster launcher preset on the real local SLURM cluster."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from launch.sweep import sweep_status

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(180)]


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")
        time.sleep(0.2)


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def _sacct(job_id: str) -> list[str]:
    out = subprocess.run(
        ["sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", job_id],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    return out.splitlines()


def test_three_task_array_finishes(slurm_cluster, toy_command, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    start = time.monotonic()
    done = subprocess.run(
        toy_command("hydra/launcher=local_cluster", "hydra.launcher.wait=true", "x=1,2,3", f"hydra.sweep.dir={sweep}"),
        cwd=tmp_path, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    attempts = [(sweep / str(i) / "attempts.txt").read_text().split() for i in range(3)]
    assert [a[2] for a in attempts] == ["x=1", "x=2", "x=3"]
    job_ids = [a[0].removeprefix("job=") for a in attempts]
    array = job_ids[0].split("_")[0]
    assert job_ids == [f"{array}_{i}" for i in range(3)]  # one SLURM array, one task per cell
    assert all((sweep / str(i) / "done.txt").is_file() for i in range(3))
    # The sacct stand-in answers submitit's query from scontrol.
    assert _sacct(array)[0] == "JobID|State|NodeList"
    assert sorted(_sacct(array)[1:]) == [f"{j}|COMPLETED|localhost" for j in job_ids]
    print(f"3-task array through hydra/launcher=local_cluster: {elapsed:.1f} s")


@pytest.fixture
def env_with_a_wandb_service() -> dict[str, str]:
    """The environment of a submitting process that used W&B itself (a notebook, or this test session): wandb left
    its service's token in ``WANDB_SERVICE``, and SLURM exports it into the jobs."""
    import wandb

    wandb.setup()
    assert "WANDB_SERVICE" in os.environ
    return dict(os.environ)


def test_usr2_requeues_into_the_same_folder(
    slurm_cluster, toy_command, tmp_path: Path, env_with_a_wandb_service: dict[str, str]
) -> None:
    sweep = tmp_path / "sweep"
    cell = sweep / "0"
    launcher = subprocess.Popen(
        toy_command("hydra/launcher=local_cluster", "hydra.launcher.wait=true", "x=7", "hold_s=120", "wandb=true",
                    f"hydra.sweep.dir={sweep}"),
        cwd=tmp_path, env=env_with_a_wandb_service, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: "attempt started" in _read(cell / "toy_app.log"), 90, "the first attempt")
        job_id = _read(cell / "attempts.txt").split()[0].removeprefix("job=")
        # While it runs, gol-sweep status sees the cell's live SLURM job (there is no record.json in the toy app).
        (status,) = sweep_status(sweep)
        assert (status.state, status.detail) == ("running", f"job {job_id} started, no record.json yet")

        start = time.monotonic()
        subprocess.run(["scancel", "--signal=USR2", job_id], timeout=30, check=True)
        output, _ = launcher.communicate(timeout=120)
        requeue_s = time.monotonic() - start
    finally:
        if launcher.poll() is None:
            launcher.kill()
            subprocess.run(["scancel", job_id], timeout=30, check=False)
    assert launcher.returncode == 0, output[-3000:]
    lines = _read(cell / "attempts.txt").splitlines()
    assert lines == [f"job={job_id} slurm={job_id.split('_')[0]} x=7"] * 2  # same job id, same folder, twice
    assert (cell / "done.txt").read_text() == "7\n"
    assert sorted(p.name for p in sweep.iterdir()) == [".submitit", "0", "multirun.yaml"]
    job_log = _read(next((sweep / ".submitit" / job_id).glob("*_log.out")))
    assert "marked W&B run toy7 as preempting; resubmitting" in job_log
    assert len(list((cell / "wandb").glob("offline-run-*-toy7"))) == 2  # the second attempt resumed the id
    print(f"USR2 -> requeue -> second attempt finished: {requeue_s:.1f} s")


def test_sacct_standin_reports_a_crash(slurm_cluster, tmp_path: Path) -> None:
    job_id = subprocess.run(
        ["sbatch", "--parsable", "--mem=100", f"--output={tmp_path}/%j.out", "--wrap", "exit 3"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.strip()  # fmt: skip
    _wait_for(lambda: any("|FAILED|" in line for line in _sacct(job_id)), 60, "FAILED in sacct")
    assert _sacct(job_id)[1:] == [f"{job_id}|FAILED|localhost"]
