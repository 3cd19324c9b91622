"""Provenance facts for the run record: git state, versions, device and annotation fingerprints (quiet, never fatal)."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from analysis.schema import provenance_values
from gol import provenance

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)  # fmt: skip


@needs_git
def test_git_state_of_a_checkout_clean_then_dirty(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "commit", "-qm", "a")
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    (repo / "outputs").mkdir()
    (repo / "outputs" / "record.json").write_text("{}")  # untracked run outputs leave the tree clean
    assert provenance.git_state(repo) == (sha, False)
    (repo / "a.py").write_text("x = 2\n")
    assert provenance.git_state(repo) == (sha, True)


@needs_git
def test_git_state_is_none_outside_a_checkout_or_inside_someone_elses(tmp_path: Path) -> None:
    assert provenance.git_state(tmp_path) == (None, None)
    _git(tmp_path, "init", "-q")
    (tmp_path / "site-packages").mkdir()  # an installed gol inside another project's repository
    assert provenance.git_state(tmp_path / "site-packages") == (None, None)


def test_versions_name_the_evaluator_in_use() -> None:
    hotcoco = provenance.versions("hotcoco")
    assert set(hotcoco) == {"python", "torch", "torchvision", "gol", "hotcoco"}
    assert hotcoco["torch"] == torch.__version__ and hotcoco["hotcoco"]
    assert set(provenance.versions("lvis")) == {"python", "torch", "torchvision", "gol", "lvis"}


def test_the_device_is_its_type_the_processes_on_it_and_its_name() -> None:
    info = provenance.device_info(torch.device("cpu"), 4)
    assert (info["type"], info["count"]) == ("cpu", 4) and isinstance(info["name"], str) and info["name"]


def _data(train: Path, val: Path) -> Any:
    """What the fingerprints read of a DataSource: its two annotation files."""
    return SimpleNamespace(train=SimpleNamespace(annotation_file=train), val_annotation_file=val)


def test_annotation_fingerprints_warn_when_a_resumed_run_reads_other_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train, val = tmp_path / "train.json", tmp_path / "val.json"
    train.write_text('{"images": []}')
    val.write_text('{"images": [1]}')
    first = provenance.annotation_fingerprints(_data(train, val))
    assert {split: entry["sha256"] for split, entry in first.items()} == {
        "train": hashlib.sha256(train.read_bytes()).hexdigest(),
        "val": hashlib.sha256(val.read_bytes()).hexdigest(),
    }
    with caplog.at_level(logging.WARNING, logger="gol.provenance"):
        assert provenance.annotation_fingerprints(_data(train, val), first) == first
        assert caplog.records == []
        val.write_text('{"images": [2, 3]}')
        again = provenance.annotation_fingerprints(_data(train, val), first)
    assert again["val"]["sha256"] != first["val"]["sha256"]
    assert again["val"]["earlier_sha256"] == [first["val"]["sha256"]]  # kept for good, also on the next resume
    assert provenance.annotation_fingerprints(_data(train, val), again)["val"]["earlier_sha256"] == [
        first["val"]["sha256"]
    ]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith("the val annotations") and "mixes two datasets" in warning
    # Tables see a dataset of its own: "<earlier>+<now>", never averaged or compared with runs of either file.
    digest = provenance_values(None, None, again)["val_ann_sha256"]
    assert digest == f"{first['val']['sha256']}+{again['val']['sha256']}"
    val.unlink()  # moved away after loading: left out, the run goes on
    assert set(provenance.annotation_fingerprints(_data(train, val))) == {"train"}
