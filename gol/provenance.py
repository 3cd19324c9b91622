"""Where a run's numbers come from, for its record: code (commit, dirty tree, package versions), hardware (device
type and count) and data (fingerprints of the annotation files it read).

``gol-tables`` refuses to average or compare runs whose annotation fingerprints differ and marks cells built from
a dirty tree or another commit, so everything here is cheap and quiet: a provenance fact that cannot be found is
None, never an error.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torchvision

import gol
from gol.data import DataSource
from gol.fingerprint import fingerprint

log = logging.getLogger(__name__)

# eval.engine -> the distribution that evaluates with it
EVALUATORS = {"hotcoco": "hotcoco", "lvis": "lvis"}
REPO = Path(gol.__file__).resolve().parent.parent  # the checkout gol runs from (site-packages when installed)


def git_state(repo: Path = REPO) -> tuple[str | None, bool | None]:
    """The checkout's commit and whether tracked files have uncommitted changes; (None, None) when ``repo`` is not
    the top of a git checkout (an installed package) or git is unavailable. Untracked files (run outputs, data)
    do not make a tree dirty."""
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=repo, capture_output=True,
                             text=True, check=True, timeout=30)  # fmt: skip
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True, check=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None, None
    lines = top.stdout.split()
    if len(lines) != 2 or Path(lines[0]).resolve() != repo.resolve():
        return None, None  # an enclosing repository of something else
    return lines[1], bool(status.stdout.strip())


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(eval_engine: str) -> dict[str, str | None]:
    """Python, torch, torchvision, gol and the evaluator of ``eval.engine`` (hotcoco or lvis), as installed."""
    evaluator = EVALUATORS.get(eval_engine, eval_engine)
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "gol": _version("gol") or gol.__version__,
        evaluator: _version(evaluator),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: torch.device, world_size: int) -> dict[str, Any]:
    """``{"type": "cuda" | "cpu" | ..., "count": processes of the job (one device each), "name": the model}``."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {"type": device.type, "count": world_size, "name": name}


def annotation_fingerprints(
    data: DataSource, before: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """``{"train": ..., "val": ...}``: ``gol.fingerprint`` of the annotation files the run reads. A split whose file
    cannot be read again (moved away since it was loaded) is left out and logged; one whose content differs from
    ``before`` (an earlier attempt of this run, resumed) is logged, since the run then mixes two datasets, and the
    earlier digests stay in ``earlier_sha256``."""
    files = {"train": data.train.annotation_file, "val": data.val_annotation_file}
    found = {}
    for split, path in files.items():
        try:
            found[split] = fingerprint(path)
        except OSError as error:
            log.warning("no fingerprint of the %s annotations %s: %s", split, path, error)
            continue
        earlier = (before or {}).get(split) or {}
        history = list(earlier.get("earlier_sha256") or [])
        if earlier.get("sha256") not in (None, found[split]["sha256"]):
            history.append(earlier["sha256"])
            log.warning("the %s annotations (%s) differ from those the run was started with (%s); this run mixes "
                        "two datasets: start it again in a new folder", split, path, earlier.get("path"))  # fmt: skip
        if history:  # kept for good: tables treat the run as one of a dataset of its own
            found[split]["earlier_sha256"] = history
    return found
