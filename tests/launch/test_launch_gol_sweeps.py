"""gol-train sweeps on the real local SLURM cluster: a 3-cell smoke sweep with one cell preempted mid-training,
re-launches that fill in, a 2-task (gloo) job and one whose process is killed, the dry run and the preflight
refusal. As a user types them: `gol-train ... hydra/launcher=local_cluster` returns once the cells are queued,
then `gol-sweep wait <sweep dir>` waits for them.

One sweep serves the first tests (in file order): its gumbel cell gets USR2 mid-training, is requeued and
resumes; the re-launch test then deletes that cell and runs it again without interruption, so the two runs of
the same cell (same seed, CPU, one thread) can be compared.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gol import checkpoint
from launch.sweep import sweep_status
from tests_support import compose_train

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]

GolTrain = Callable[..., Any]  # the gol_train fixture (conftest.py)
# Long enough to signal mid-training (a few seconds of CPU), checkpoints every 5 iterations.
SCHEDULE = ("scale=smoke", "schedule.max_iter=40", "schedule.checkpoint_period=5")


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")
        time.sleep(0.1)


def _finish(process: Any, timeout_s: float = 180) -> tuple[int, str]:
    """Wait for a gol-train process (the gol_train fixture's); (exit status, stdout + stderr)."""
    done = process.finish(timeout_s)
    return done.returncode, done.stdout + done.stderr


def _gol_sweep_wait(sweep: Path, cwd: Path, timeout_s: float = 240) -> tuple[int, str]:
    """``gol-sweep wait <sweep>``: (exit status, stdout + stderr)."""
    done = subprocess.run([sys.executable, "-m", "launch.sweep", "wait", str(sweep)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout_s, check=False)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def _squeue() -> list[str]:
    done = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.split("\n")[:-1]


def _record(cell: Path) -> dict:
    return json.loads((cell / "record.json").read_text())


def _cell_folder(sweep: Path, activation: str) -> Path | None:
    """The run folder of the cell with this activation (folders are named by the cell's sorted overrides)."""
    found = sorted(sweep.glob(f"activation={activation},*")) + sorted(sweep.glob(f"activation={activation}"))
    assert len(found) <= 1, found
    return found[0] if found else None


def _smoke_data(folder: Path) -> None:
    """The smoke scale's embedded dataset in ``folder/data``, where a `gol-train` typed in ``folder`` looks for it,
    generated once here (the jobs of a sweep would otherwise each generate it)."""
    cfg = compose_train(["scale=smoke", f"paths.data_root={folder / 'data'}"], folder)
    instantiate(cfg.dataset)


@dataclass
class SmokeSweep:
    root: Path
    sweep: Path
    command: tuple[str, ...]
    output: str
    seconds: float  # launch to launcher exit, including the preemption round trip
    requeue_seconds: float  # USR2 to launcher exit
    job_id: str  # of the preempted cell

    def cell(self, activation: str) -> Path:
        folder = _cell_folder(self.sweep, activation)
        assert folder is not None, f"no run folder for activation={activation} in {self.sweep}"
        return folder


@pytest.fixture(scope="module")
def smoke_sweep(slurm_cluster, gol_train: GolTrain, tmp_path_factory: pytest.TempPathFactory) -> SmokeSweep:
    """The demo experiment (activation=sigmoid,softmax,gumbel) at smoke scale on the local cluster, typed in a
    fresh folder; the gumbel cell gets USR2 after its checkpoint at iteration 10 (SLURM's preemption signal), is
    requeued by the launcher's hook and resumes. Launching the same command again fills the sweep in."""
    root = tmp_path_factory.mktemp("smoke")
    _smoke_data(root)
    sweep = root / "outputs" / "sweeps" / "demo-smoke"
    command = ("experiment=demo", *SCHEDULE, "hydra/launcher=local_cluster")

    def checkpointed() -> bool:
        gumbel = _cell_folder(sweep, "gumbel") if sweep.is_dir() else None
        return gumbel is not None and (gumbel / "checkpoints" / "iter_0000010.pt").is_file()

    start = time.monotonic()
    code, output = _finish(gol_train(*command, cwd=root), timeout_s=60)  # returns once the cells are queued
    assert code == 0, output[-4000:]
    assert "queued 3 cell(s) as job" in output and f"gol-sweep wait {sweep}" in output
    _wait_for(checkpointed, 150, "the gumbel checkpoint at iteration 10")
    gumbel = _cell_folder(sweep, "gumbel")
    assert gumbel is not None
    job_id = str(OmegaConf.load(gumbel / ".hydra" / "hydra.yaml").hydra.job.id)
    subprocess.run(["scancel", "--signal=USR2", job_id], timeout=30, check=True)
    signalled = time.monotonic()
    waited, report = _gol_sweep_wait(sweep, root)
    done = time.monotonic()
    assert waited == 0, report[-4000:]
    assert "3 cells: 3 finished" in report
    return SmokeSweep(root, sweep, command, output, done - start, done - signalled, job_id)


def test_smoke_sweep_finishes_with_one_wandb_run_per_cell(smoke_sweep: SmokeSweep) -> None:
    statuses = sweep_status(smoke_sweep.sweep)
    activations = [next(o for o in s.overrides if o.startswith("activation=")) for s in statuses]
    assert activations == ["activation=sigmoid", "activation=softmax", "activation=gumbel"]
    assert [s.state for s in statuses] == ["finished"] * 3
    for status in statuses:
        assert status.run is not None
        record = status.run.record
        assert record is not None and record.iteration == record.max_iter == 40
        assert record.wandb is not None and record.wandb["mode"] == "offline"
        assert list((status.run.path / "wandb").glob(f"offline-run-*-{record.wandb['id']}"))
    assert "3 cells: 3 missing; 3 to submit" in smoke_sweep.output
    _wait_for(lambda: _squeue() == [], 30, "the jobs leaving the queue")  # a job may still be completing
    print(f"3-cell smoke sweep on the local cluster (one cell preempted and requeued): {smoke_sweep.seconds:.1f} s")


def test_preempted_cell_is_requeued_and_resumes(smoke_sweep: SmokeSweep) -> None:
    cell = smoke_sweep.cell("gumbel")
    log = (cell / "train.log").read_text()
    assert "marked W&B run" in log and "as preempting; resubmitting" in log
    resumed = re.findall(r"resumed from .*/checkpoints/last\.pt at iteration (\d+)", log)
    assert len(resumed) == 1 and 10 <= int(resumed[0]) < 40, log[-3000:]
    assert _record(cell)["state"] == "finished"
    # Same SLURM job (requeued, not resubmitted), same folder, same W&B run: two offline fragments of one id.
    assert str(OmegaConf.load(cell / ".hydra" / "hydra.yaml").hydra.job.id) == smoke_sweep.job_id
    job_log = next((smoke_sweep.sweep / ".submitit" / smoke_sweep.job_id).glob("*_log.out")).read_text()
    assert job_log.count("Caught signal SIGUSR2") == 1  # the task alone, not its data loader workers
    assert f"Requeued job {smoke_sweep.job_id}" in job_log
    run_id = _record(cell)["wandb"]["id"]
    fragments = sorted((cell / "wandb").glob("offline-run-*"))
    assert [f.name.rsplit("-", 1)[1] for f in fragments] == [run_id, run_id]
    assert all((f / f"run-{run_id}.wandb").is_file() for f in fragments)
    print(f"USR2 -> requeue -> resume -> finished, launcher done: {smoke_sweep.requeue_seconds:.1f} s")


def test_relaunch_fills_in(smoke_sweep: SmokeSweep, gol_train: GolTrain) -> None:
    sweep = smoke_sweep.sweep
    jobs_before = sorted(p.name for p in (sweep / ".submitit").iterdir())
    code, output = _finish(gol_train(*smoke_sweep.command, cwd=smoke_sweep.root))
    assert code == 0, output[-3000:]
    assert "3 cells: 3 finished; nothing to submit" in output
    assert len(re.findall(r"skipping activation=\w+\S*: finished \(segm AP", output)) == 3
    assert sorted(p.name for p in (sweep / ".submitit").iterdir()) == jobs_before  # nothing submitted

    # A deleted cell and a failed one run again; the finished one is left alone.
    preempted = smoke_sweep.cell("gumbel")
    preempted_metrics = json.loads((preempted / "metrics.json").read_text())
    preempted_weights = checkpoint.load(preempted / "checkpoints" / "last.pt")["model"]
    shutil.rmtree(preempted)
    failed = smoke_sweep.cell("softmax")
    failed_metrics = json.loads((failed / "metrics.json").read_text())
    (failed / "record.json").write_text(json.dumps({**_record(failed), "state": "failed", "error": "OSError: disk"}))
    finished_before = (smoke_sweep.cell("sigmoid") / "record.json").read_text()
    start = time.monotonic()
    code, output = _finish(gol_train(*smoke_sweep.command, cwd=smoke_sweep.root))
    assert code == 0, output[-3000:]
    assert "3 cells: 1 finished, 1 failed, 1 missing; 2 to submit" in output
    waited, report = _gol_sweep_wait(sweep, smoke_sweep.root)
    seconds = time.monotonic() - start
    assert waited == 0, report[-3000:]
    assert re.search(r"skipping activation=sigmoid\S+: finished", output)
    assert [s.state for s in sweep_status(sweep)] == ["finished"] * 3
    assert (smoke_sweep.cell("sigmoid") / "record.json").read_text() == finished_before
    # The failed cell resumed from its last checkpoint (iteration 40): evaluated again, same metrics.
    assert json.loads((failed / "metrics.json").read_text()) == failed_metrics
    # The deleted cell trained again from scratch without interruption: exactly the preempted run's metrics.
    rerun = json.loads((preempted / "metrics.json").read_text())
    assert "resumed from" not in (preempted / "train.log").read_text()
    assert rerun == preempted_metrics
    weights = checkpoint.load(preempted / "checkpoints" / "last.pt")["model"]
    assert weights.keys() == preempted_weights.keys()
    assert all(torch.equal(weights[k], preempted_weights[k]) for k in weights)  # bit for bit, not only the AP
    _wait_for(lambda: _squeue() == [], 30, "the jobs leaving the queue")
    print(f"re-launch of 2 cells (one from scratch, one evaluation): {seconds:.1f} s; preempted and "
          f"uninterrupted runs: equal metrics (bbox AP50 {rerun['bbox']['AP50']!r}) and weights")  # fmt: skip


def test_dry_run_shows_what_a_relaunch_would_do(smoke_sweep: SmokeSweep, gol_train: GolTrain) -> None:
    multirun = (smoke_sweep.sweep / "multirun.yaml").read_text()
    code, output = _finish(gol_train(*smoke_sweep.command, "hydra.launcher.dry_run=true", cwd=smoke_sweep.root))
    assert code == 0, output[-3000:]
    assert "preflight: SLURM request fits: partition debug" in output
    report = [line for line in output.splitlines() if not line.startswith("[")]
    assert report[0] == f"dry run: sweep folder {smoke_sweep.sweep}"
    assert [line.split()[:3] for line in report[2:5]] == [
        ["finished", smoke_sweep.cell(a).name, "skip"] for a in ("sigmoid", "softmax", "gumbel")
    ]
    assert "3 cells: 3 finished; nothing to submit" in report
    assert report[-1] == "nothing queued (hydra.launcher.dry_run=true)"
    assert (smoke_sweep.sweep / "multirun.yaml").read_text() == multirun and _squeue() == []


def test_preflight_refuses_an_unknown_partition(slurm_cluster, gol_train: GolTrain, tmp_path: Path) -> None:
    code, output = _finish(gol_train("-m", "activation=sigmoid,gumbel", "scale=smoke", "hydra/launcher=slurm",
                                     "hydra.launcher.partition=nope", cwd=tmp_path))  # fmt: skip
    assert code == 2, output[-3000:]
    refusal = [line for line in output.splitlines() if "'nope'" in line]
    assert len(refusal) == 1 and "Traceback" not in output
    assert refusal[0].endswith(
        "SLURM partition 'nope' does not exist; existing partitions: debug; "
        "set hydra.launcher.partition (or GOL_SLURM_PARTITION) to one of them; nothing queued"
    )
    assert _squeue() == [] and not (tmp_path / "outputs").exists()


def test_two_task_job_trains_with_gloo(slurm_cluster, gol_train: GolTrain, tmp_path: Path) -> None:
    """One cell as a 2-task SLURM job (the slurm preset's layout, one CPU per task): both tasks run the cell,
    join one gloo process group and split the global batch; rank 0 alone writes the record."""
    _smoke_data(tmp_path)
    code, output = _finish(gol_train("-m", "activation=gumbel", "scale=smoke", "schedule.max_iter=6",
                                     "hydra/launcher=local_cluster", "hydra.launcher.tasks_per_node=2",
                                     cwd=tmp_path))  # fmt: skip
    assert code == 0, output[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun").iterdir()
    waited, report = _gol_sweep_wait(sweep, tmp_path)
    assert waited == 0, report[-3000:]
    (status,) = sweep_status(sweep)
    assert status.state == "finished" and status.run is not None and status.run.record is not None
    assert (status.run.record.world_size, status.run.record.iteration) == (2, 6)
    log = (status.run.path / "train.log").read_text()
    assert "process 0 of 2 joined the gloo process group" in log
    assert "process 1 of 2 joined the gloo process group" in log
    assert [p.name for p in sweep.iterdir() if (p / "record.json").is_file()] == [status.run.path.name]
    results = sorted(p.name for p in (sweep / ".submitit").glob("*/*_result.pkl"))
    assert [name.split("_")[1] for name in results] == ["0", "1"]  # the task ran on both SLURM tasks
    _wait_for(lambda: _squeue() == [], 30, "the job leaving the queue")  # before the cluster stops


def _main_process_of_rank(rank: int) -> int | None:
    """The pid of the task with SLURM rank ``rank`` (not one of its data loader workers) of the one running job."""
    jobs = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%A"], capture_output=True, text=True, timeout=30,
                          check=True).stdout.split()  # fmt: skip
    assert len(jobs) == 1, jobs
    wanted = {f"SLURM_PROCID={rank}".encode(), f"SLURM_JOB_ID={jobs[0]}".encode()}
    tasks = {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"submitit.core._submit" in (proc / "cmdline").read_bytes():
                environ = set((proc / "environ").read_bytes().split(b"\0"))
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                tasks[int(proc.name)] = (wanted <= environ, parent)
        except (OSError, ValueError):
            continue
    mains = [pid for pid, (ours, parent) in tasks.items() if ours and parent not in tasks]
    assert len(mains) <= 1, mains
    return mains[0] if mains else None


def test_a_killed_process_ends_its_job_within_a_minute(slurm_cluster, gol_train: GolTrain, tmp_path: Path) -> None:
    """A 2-task (gloo) job whose second process is killed mid-training ends at once, not at a collective timeout;
    the cell is recorded failed with what happened, and the waiting launcher (hydra.launcher.wait=true) reports
    it in one line."""
    _smoke_data(tmp_path)
    command = ("-m", "activation=gumbel", "scale=smoke", "schedule.max_iter=400", "schedule.checkpoint_period=5",
               "hydra/launcher=local_cluster", "hydra.launcher.tasks_per_node=2")  # fmt: skip
    launcher = gol_train(*command, "hydra.launcher.wait=true", cwd=tmp_path)
    try:

        def training() -> bool:
            records = list((tmp_path / "outputs" / "multirun").glob("*/*/record.json"))
            return bool(records) and json.loads(records[0].read_text()).get("iteration", 0) >= 5

        _wait_for(lambda: training() or not launcher.running(), 150, "training under way")
        rank1 = _main_process_of_rank(1)
        assert rank1 is not None and launcher.running()
        os.kill(rank1, signal.SIGKILL)
        killed = time.monotonic()
        (sweep,) = (tmp_path / "outputs" / "multirun").iterdir()
        try:
            _wait_for(lambda: _squeue() == [] and sweep_status(sweep)[0].state == "failed", 120, "the job's end")
        except AssertionError as error:
            logs = "".join(p.read_text()[-1500:] for p in sorted((sweep / ".submitit").glob("*/*_log.*")))
            raise AssertionError(f"{error}: squeue {_squeue()}, {sweep_status(sweep)[0]}\n{logs}") from None
        ended = time.monotonic() - killed
        code, output = _finish(launcher, timeout_s=120)
        report_s = time.monotonic() - killed
    finally:
        launcher.kill()
    (status,) = sweep_status(sweep)
    assert status.state == "failed" and status.run is not None and status.run.record is not None
    error = status.run.record.error or ""
    assert error.startswith("JobFailure: another process of the job died or stopped responding"), error
    assert code != 0 and "Traceback" not in output, output[-3000:]
    reported = [line for line in output.splitlines() if "failed (job" in line]
    assert len(reported) == 1 and reported[0].endswith(error), output[-3000:]
    assert ended < 60, f"the job took {ended:.0f} s to end after its process was killed"
    print(f"2-task job, process 1 killed: job ended and recorded failed {ended:.1f} s later, reported by the "
          f"waiting launcher after {report_s:.1f} s")  # fmt: skip
