import logging
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from gol import checkpoint, files


def _state(iteration):
    """A whole checkpoint state (every key resume reads), small."""
    keys = ("model", "optimizer", "scheduler", "scaler", "sampler", "rng", "skipped_steps")
    return {**{key: {} for key in keys}, "iteration": iteration}


def test_save_keeps_newest_periodic_and_last(tmp_path):
    for it in (2, 4, 6):
        checkpoint.save(_state(it), tmp_path, iteration=it, keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["iter_0000004.pt", "iter_0000006.pt", "last.pt"]
    path, state = checkpoint.load_latest(tmp_path)
    assert state["iteration"] == 6 and path.name == "last.pt"


def test_resume_lookup_falls_back_to_periodic_and_none(tmp_path):
    assert checkpoint.load_latest(tmp_path) is None
    assert checkpoint.load_latest(tmp_path / "missing") is None
    checkpoint.save_atomic(_state(3), tmp_path / "iter_0000003.pt")
    assert checkpoint.load_latest(tmp_path)[0].name == "iter_0000003.pt"


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "not_a_state"])
def test_resume_skips_damaged_checkpoints_for_the_newest_whole_one(tmp_path, caplog, damage):
    """A node lost during a copy, a quota hit mid-write on a network filesystem: the newest files are damaged, the
    resume takes the newest one that loads whole and says which it skipped and why."""
    for it in (2, 4):
        checkpoint.save(_state(it), tmp_path, iteration=it, keep=2)
    for name in ("iter_0000004.pt", "last.pt"):
        path = tmp_path / name
        data = path.read_bytes()
        content = {
            "truncated": data[: len(data) // 2],
            "empty": b"",
            "garbage": b"\x00" * 100,
            "not_a_state": None,
        }[damage]
        if content is None:
            torch.save({"iteration": 4}, path)  # loads, but is not a whole training state
        else:
            path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        path, state = checkpoint.load_latest(tmp_path)
    assert path.name == "iter_0000002.pt" and state["iteration"] == 2
    assert "iter_0000004.pt (" in caplog.text and "last.pt (" in caplog.text and "resuming from" in caplog.text


def test_every_checkpoint_damaged_is_one_line(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(checkpoint.NoIntactCheckpointError) as error:
        checkpoint.load_latest(tmp_path)
    assert "last.pt" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ValueError, match="cannot be loaded .*damaged"):
        checkpoint.load(tmp_path / "last.pt")


def test_a_full_disk_leaves_the_previous_checkpoint_whole(tmp_path):
    """torch.save hides the failed write's OSError in a RuntimeError; the write still reports a full disk in one
    line naming the file, and last.pt keeps the previous state (a file-size limit stands in for a full disk)."""
    checkpoint.save(_state(2), tmp_path, iteration=2)
    script = f"""
import resource, sys, torch
from pathlib import Path
from gol import checkpoint, files
from gol.files import DiskFullError
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
state = {{**{_state(4)!r}, "model": {{"w": torch.zeros(1_000_000)}}}}
try:
    checkpoint.save(state, Path({str(tmp_path)!r}), iteration=4)
except DiskFullError as error:
    print(error)
    sys.exit(3)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    message = done.stdout.strip()
    assert "\n" not in message and "last.pt" in message and "GiB free" in message
    assert "the previous file is intact" in message
    _, state = checkpoint.load_latest(tmp_path)
    assert state["iteration"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_0000002.pt", "last.pt"]  # no temporary left


def test_failed_write_leaves_previous_file_intact(tmp_path):
    target = tmp_path / "last.pt"
    checkpoint.save_atomic({"ok": 1}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        checkpoint.save_atomic({"bad": Unpicklable()}, target)
    assert checkpoint.load(target) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_kill_during_the_periodic_write_resumes_from_that_state_and_its_partial_file_is_cleared(tmp_path):
    """SIGKILL while ``iter_0000004.pt`` is being written: ``last.pt`` already holds iteration 4, so nothing is
    trained twice; the killed write's temporary file is what ``remove_partial_writes`` clears, and only it."""
    checkpoint.save(_state(2), tmp_path, iteration=2)
    (tmp_path / ".claim").write_text("{}")  # a run folder's other hidden files stay
    script = f"""
import torch
from pathlib import Path
from gol import checkpoint, files
state = {{**{_state(4)!r}, "model": {{"w": torch.zeros(20_000_000)}}}}  # 80 MB: a write long enough to hit
checkpoint.save(state, Path({str(tmp_path)!r}), iteration=4)
"""
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".iter_0000004.pt.*.tmp")) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.001)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the write ended before the kill"
    (partial,) = tmp_path.glob(".iter_0000004.pt.*.tmp")
    path, state = checkpoint.load_latest(tmp_path)
    assert path.name == "last.pt" and state["iteration"] == 4
    assert files.remove_partial_writes(tmp_path, tmp_path / "absent") == [partial]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".claim", "iter_0000002.pt", "last.pt"]


def test_rng_state_round_trip():
    state = checkpoint.rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    checkpoint.set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_missing_checkpoint_error_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        checkpoint.load(tmp_path / "nope.pt")
