"""The local run record: ``record.json``, ``metrics.json`` and ``per_category.json`` in each run folder.

It is the source of truth for sweep status and table regeneration when W&B is offline or unreachable. Every
write goes through a temporary file and an atomic rename, so a killed job never leaves a half-written record.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

SCHEMA = 1
RECORD = "record.json"
METRICS = "metrics.json"
PER_CATEGORY = "per_category.json"
STATES = ("running", "finished", "failed")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, payload: Any) -> None:
    """Atomically replace ``path`` with ``payload`` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(run_dir: Path) -> dict[str, Any] | None:
    """The run's record, or None when the folder has none yet."""
    path = run_dir / RECORD
    if not path.is_file():
        return None
    with open(path) as f:
        return json.load(f)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    with open(run_dir / METRICS) as f:
        return json.load(f)


def write_yaml(path: Path, cfg: DictConfig) -> None:
    """Atomically write the resolved config (every interpolation replaced by its value)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        OmegaConf.save(cfg, tmp, resolve=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def owner() -> dict[str, Any]:
    """Who is running this job: used to tell a requeued SLURM job (same id) from a second, concurrent run."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


class RunRecord:
    """Keeps ``record.json`` up to date over a run's life: running -> finished | failed."""

    def __init__(self, run_dir: Path, fields: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.fields = {"schema": SCHEMA, **fields}

    def update(self, **changes: Any) -> None:
        self.fields.update(changes)
        self.fields["updated_at"] = now()
        write_json(self.run_dir / RECORD, self.fields)

    def finish(self, *, metrics: dict[str, Any], per_category: dict[str, Any] | None) -> None:
        write_json(self.run_dir / METRICS, metrics)
        if per_category is not None:
            write_json(self.run_dir / PER_CATEGORY, per_category)
        self.update(state="finished", error=None, finished_at=now())

    def fail(self, error: BaseException) -> None:
        text = f"{type(error).__name__}: {error}".strip()
        self.update(state="failed", error=text.splitlines()[0] if text else type(error).__name__)
