"""The local run record: ``record.json``, ``metrics.json`` and ``per_category.json`` in each run folder.

It is the source of truth for sweep status and table regeneration when W&B is offline or unreachable. One typed
``Record`` is written by the engine and read by the launchers (``launch``) and the tables (``analysis``); this
module imports neither torch nor the rest of ``gol``, so both can use it cheaply. Every write goes through a
temporary file and an atomic rename, so a killed job never leaves a half-written record.

Whether a run is still alive has one rule, ``Record.is_alive``: a running record whose SLURM job is queued or
running, whose process on this host still exists, or (for a process elsewhere) that was updated within
``STALE_AFTER``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import socket
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

SCHEMA = 1
RECORD = "record.json"
METRICS = "metrics.json"
PER_CATEGORY = "per_category.json"
STATES = ("running", "finished", "failed")
# The config groups whose choices a record keeps (the cell's identity in tables and sweep status).
CHOICE_GROUPS = ("activation", "loss", "detector", "dataset", "sampler", "schedule")
# A running record from a process that cannot be probed (another host) counts as alive this long after its
# last update; the engine updates it at every log period and checkpoint.
STALE_AFTER = dt.timedelta(minutes=30)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def owner() -> dict[str, Any]:
    """Who is running this job: used to tell a requeued SLURM job (same id) from a second, concurrent run."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Record:
    """``record.json``: a run's state, identity, progress and provenance (schema 1)."""

    run_id: str = ""
    state: str = "running"  # one of STATES
    error: str | None = None  # first line of the error of a failed run
    experiment: str | None = None
    choices: dict[str, str | None] = field(default_factory=dict)  # CHOICE_GROUPS -> option
    overrides: list[str] = field(default_factory=list)
    seed: int | None = None
    git_commit: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    iteration: int = 0
    max_iter: int | None = None
    skipped_steps: int = 0
    owner: dict[str, Any] = field(default_factory=dict)
    world_size: int | None = None
    wandb: dict[str, Any] | None = None
    # Where the backbone starts: "imagenet:<file>", "detector:<file>" (whole-detector weights) or "scratch".
    backbone_init: str | None = None
    released_config: str | None = None  # the released config of a paper cell (gol.released), else None
    deviations: list[str] = field(default_factory=list)  # "key=value" settings changed from that config
    schema: int = SCHEMA

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        """A record from parsed JSON; keys of another schema are ignored, missing ones take their defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key in ("choices", "owner"):
            values[key] = dict(values.get(key) or {})
        values["overrides"] = [str(o) for o in values.get("overrides") or []]
        values["deviations"] = [str(d) for d in values.get("deviations") or []]
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def updated(self) -> dt.datetime | None:
        """``updated_at`` as an aware datetime (a naive stamp is taken as local time); None if absent or unreadable."""
        if not self.updated_at:
            return None
        try:
            return dt.datetime.fromisoformat(self.updated_at).astimezone()
        except ValueError:
            return None

    def is_alive(
        self,
        *,
        now: dt.datetime | None = None,
        job_id: str | None = None,
        live_jobs: Collection[str] | None = None,
        stale_after: dt.timedelta = STALE_AFTER,
        me: Mapping[str, Any] | None = None,
    ) -> bool:
        """Whether another process may still be working on this run.

        Args:
            now: the time to judge the last update against (default: now).
            job_id: the SLURM job id of the run's folder (Hydra's ``hydra.job.id``), if known.
            live_jobs: the job ids SLURM has queued or running; None when SLURM was not asked.
            stale_after: how long an update keeps a run alive whose process cannot be probed.
            me: the asking process's ``owner()``: a record it owns (also through a requeue of the same SLURM
                job) is not another process's.
        """
        if self.state != "running":
            return False
        host, pid, slurm_job = self.owner.get("host"), self.owner.get("pid"), self.owner.get("slurm_job_id")
        if me is not None and (
            (slurm_job is not None and slurm_job == me.get("slurm_job_id"))
            or (host == me.get("host") and pid == me.get("pid"))
        ):
            return False
        if live_jobs is not None and job_id is not None and job_id in live_jobs:
            return True
        if host == socket.gethostname() and pid:
            return _pid_exists(int(pid))  # decidable on this host
        updated = self.updated()
        current = now or dt.datetime.now().astimezone()
        return updated is not None and current - updated <= stale_after


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when absent, unreadable (a torn read while it is rewritten) or not an object."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        log.warning("%s: unreadable (%s)", path, error)
        return None
    return data if isinstance(data, dict) else None


def read(run_dir: Path) -> Record | None:
    """The run's record, or None when the folder has none (or it cannot be read)."""
    data = read_json(run_dir / RECORD)
    return None if data is None else Record.from_json(data)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    with open(run_dir / METRICS) as f:
        return dict(json.load(f))


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


class RunRecord:
    """Keeps ``record.json`` up to date over a run's life: running -> finished | failed."""

    def __init__(self, run_dir: Path, record: Record) -> None:
        self.run_dir = run_dir
        self.record = record

    def update(self, **changes: Any) -> None:
        for key, value in changes.items():
            if not hasattr(self.record, key):
                raise AttributeError(f"record.json has no field {key!r}")
            setattr(self.record, key, value)
        self.record.updated_at = now()
        write_json(self.run_dir / RECORD, self.record.to_json())

    def finish(self, *, metrics: dict[str, Any], per_category: dict[str, Any] | None) -> None:
        write_json(self.run_dir / METRICS, metrics)
        if per_category is not None:
            write_json(self.run_dir / PER_CATEGORY, per_category)
        self.update(state="finished", error=None, finished_at=now())

    def fail(self, error: BaseException) -> None:
        text = f"{type(error).__name__}: {error}".strip()
        self.update(state="failed", error=text.splitlines()[0] if text else type(error).__name__)
