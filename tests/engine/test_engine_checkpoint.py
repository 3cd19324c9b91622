import random

import numpy as np
import pytest
import torch

from gol import checkpoint


def test_save_keeps_newest_periodic_and_last(tmp_path):
    for it in (2, 4, 6):
        checkpoint.save({"iteration": it}, tmp_path, iteration=it, keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["iter_0000004.pt", "iter_0000006.pt", "last.pt"]
    assert checkpoint.load(checkpoint.latest(tmp_path))["iteration"] == 6


def test_latest_falls_back_to_periodic_and_none(tmp_path):
    assert checkpoint.latest(tmp_path) is None
    assert checkpoint.latest(tmp_path / "missing") is None
    checkpoint.save_atomic({"iteration": 3}, tmp_path / "iter_0000003.pt")
    assert checkpoint.latest(tmp_path).name == "iter_0000003.pt"


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


def test_rng_state_round_trip():
    state = checkpoint.rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    checkpoint.set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_missing_checkpoint_error_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        checkpoint.load(tmp_path / "nope.pt")
