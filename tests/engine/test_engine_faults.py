"""Faults a sweep meets over days on a shared cluster, each typed as a user's `gol-train` meets it: damaged newest
checkpoints, a full disk during a checkpoint write, an unreachable W&B with a login, and an image file damaged
during the run. Every run ends with the metrics of an undisturbed one, and nothing recorded is lost."""

from __future__ import annotations

import json
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests_support import run_train, user_env

# The smoke cell with a checkpoint every iteration, so a run killed after iteration 2 leaves two of them.
ARGS = ["scale=smoke", "logger=none", "schedule.checkpoint_period=1"]


def _the_run(folder: Path) -> Path:
    (run_dir,) = (folder / "outputs" / "runs").iterdir()
    return run_dir


def _train(folder: Path, data_root: Path, *args: str, **popen: object) -> subprocess.CompletedProcess[str]:
    folder.mkdir(parents=True, exist_ok=True)
    if not popen:
        return run_train([*ARGS, *args], cwd=folder, env={"GOL_DATA": str(data_root)})
    gol_train = Path(sys.executable).with_name("gol-train")
    return subprocess.run([str(gol_train), *ARGS, *args], cwd=folder, env=user_env(folder, GOL_DATA=str(data_root)),
                          capture_output=True, text=True, timeout=600, **popen)  # type: ignore[call-overload]  # fmt: skip


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("undisturbed")
    done = _train(folder, data_root)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((_the_run(folder) / "metrics.json").read_text())


def _kill_after(folder: Path, data_root: Path, checkpoint: str) -> Path:
    """Start the cell in ``folder`` and SIGKILL it once ``checkpoint`` exists; returns the run folder."""
    folder.mkdir(parents=True, exist_ok=True)
    gol_train = Path(sys.executable).with_name("gol-train")
    proc = subprocess.Popen([str(gol_train), *ARGS], cwd=folder, env=user_env(folder, GOL_DATA=str(data_root)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(folder.glob(f"outputs/runs/*/checkpoints/{checkpoint}")) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return _the_run(folder)


def test_damaged_newest_checkpoints_resume_from_the_newest_whole_one(
    tmp_path: Path, data_root: Path, undisturbed: dict[str, object]
) -> None:
    run_dir = _kill_after(tmp_path, data_root, "iter_0000002.pt")
    ckpts = run_dir / "checkpoints"
    assert json.loads((run_dir / "record.json").read_text())["state"] == "running"
    for name in ("iter_0000002.pt", "last.pt"):  # the tail lost in a copy
        data = (ckpts / name).read_bytes()
        (ckpts / name).write_bytes(data[: len(data) // 3])
    resumed = _train(tmp_path, data_root, f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    assert "skipped damaged checkpoint(s) last.pt (" in log and "iter_0000002.pt (" in log
    assert f"resumed from {ckpts / 'iter_0000001.pt'} at iteration 1" in log
    assert json.loads((run_dir / "metrics.json").read_text()) == undisturbed


def test_a_full_disk_fails_the_run_in_one_line_and_the_rerun_finishes_identically(
    tmp_path: Path, data_root: Path, undisturbed: dict[str, object]
) -> None:
    """A file-size limit (RLIMIT_FSIZE) stands in for a full disk or a quota: the run's small files fit, its
    checkpoints do not."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    full = _train(tmp_path, data_root, preexec_fn=limit)
    assert full.returncode == 2
    errors = [line for line in full.stderr.splitlines() if "DiskFullError" in line]
    assert len(errors) == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
    assert "cannot write" in errors[0] and "last.pt" in errors[0] and "GiB free" in errors[0]
    run_dir = _the_run(tmp_path)
    record = json.loads((run_dir / "record.json").read_text())
    assert record["state"] == "failed" and record["error"].startswith("DiskFullError: cannot write")
    assert not list((run_dir / "checkpoints").glob("*.tmp")) and not list((run_dir / "checkpoints").glob(".*"))
    # Space freed, the same command again: the run resumes in its folder and ends as an undisturbed one.
    again = _train(tmp_path, data_root, f"hydra.run.dir={run_dir}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text()) == undisturbed


def test_an_unreachable_wandb_with_a_login_finishes_offline(
    tmp_path: Path, data_root: Path, undisturbed: dict[str, object]
) -> None:
    """A compute node without internet, a W&B key in the environment: the run logs offline and trains on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    tmp_path.mkdir(exist_ok=True)
    done = run_train(
        ["scale=smoke", "schedule.checkpoint_period=1", "logger.mode=online", "logger.init_timeout_s=5"],
        cwd=tmp_path,
        env={"GOL_DATA": str(data_root), "WANDB_API_KEY": "k" * 40, "WANDB_BASE_URL": f"http://127.0.0.1:{port}"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = _the_run(tmp_path)
    record = json.loads((run_dir / "record.json").read_text())
    assert record["state"] == "finished" and record["wandb"]["mode"] == "offline"
    assert "W&B unreachable" in (run_dir / "train.log").read_text()
    (offline,) = (run_dir / "wandb").glob(f"offline-run-*-{record['run_id']}")
    assert (offline / f"run-{record['run_id']}.wandb").stat().st_size > 0
    assert json.loads((run_dir / "metrics.json").read_text()) == undisturbed  # W&B changes nothing learnt


def test_two_launches_of_one_sweep_at_once_run_each_cell_once(tmp_path: Path, data_root: Path) -> None:
    """Two shells type the same paper-table sweep at the same moment: every cell is claimed by exactly one of them;
    the other says so and goes on, and both exit 0."""
    gol_train = Path(sys.executable).with_name("gol-train")
    env = user_env(tmp_path, GOL_DATA=str(data_root))
    command = [str(gol_train), "experiment=activations", "scale=smoke", "logger=none"]
    launches = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [launch.communicate(timeout=900) for launch in launches]
    for launch, (_, err) in zip(launches, outputs):
        assert launch.returncode == 0, err[-3000:]
    cells = sorted((tmp_path / "outputs" / "sweeps" / "activations-smoke").glob("*/record.json"))
    assert len(cells) == 3
    for cell in cells:
        log = (cell.parent / "train.log").read_text()
        assert log.count("iteration 4/4: loss") == 1, cell  # trained once, by one of the launches
        assert json.loads(cell.read_text())["state"] == "finished"
        assert not (cell.parent / ".claim").exists()  # given back


@pytest.mark.slow
def test_an_image_damaged_mid_run_fails_it_naming_the_file_and_the_fixed_run_resumes(tmp_path: Path) -> None:
    """The training images are replaced by garbage once the first checkpoint is written (the loader's two workers
    have at most four batches loaded ahead of 14 iterations): the run fails in one line naming an image, its record
    says so, and the same command finishes the run from its newest checkpoint once the files are back."""
    data_root = tmp_path / "data"  # this test's own embedded dataset, which it damages
    run_dir = tmp_path / "run"
    args = ["schedule.max_iter=14", "schedule.steps=[12]", f"hydra.run.dir={run_dir}"]
    gol_train = Path(sys.executable).with_name("gol-train")
    proc = subprocess.Popen([str(gol_train), *ARGS, *args], cwd=tmp_path, env=user_env(tmp_path, GOL_DATA=str(data_root)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "iter_0000001.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    images = sorted(data_root.glob("embedded/*/train2017/*.png"))
    originals = {image: image.read_bytes() for image in images}
    for image in images:
        image.write_bytes(b"not a PNG any more")
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 2, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if "ImageFileError" in line]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    record = json.loads((run_dir / "record.json").read_text())
    assert record["state"] == "failed" and record["error"].startswith("ImageFileError: cannot decode image file ")
    named = Path(record["error"].split("cannot decode image file ", 1)[1].split(" (", 1)[0])
    assert named in originals and str(named) in errors[0]

    for image, data in originals.items():  # the files fixed
        image.write_bytes(data)
    again = _train(tmp_path, data_root, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    assert "resumed from" in log and "iteration 14/14: loss" in log
    assert json.loads((run_dir / "record.json").read_text())["state"] == "finished"
