"""The local run record: ``record.json``, ``metrics.json`` and ``per_category.json`` in each run folder.

It is the source of truth for sweep status and table regeneration when W&B is offline or unreachable. One typed
``Record`` is written by the engine and read by the launchers (``launch``) and the tables (``analysis``); this
module imports neither torch nor the rest of ``gol`` (but the torch-free ``gol.files``), so both can use it
cheaply. Every write goes through a temporary file, an atomic rename and a folder fsync (``gol.files``), so a
killed job never leaves a half-written record, and a full disk is a one-line ``DiskFullError``.

Whether a run is still alive has one rule, ``Record.is_alive``: a running record whose SLURM job is queued or
running, whose process on this host still exists, or (for a process elsewhere) that was updated within
``STALE_AFTER``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gol.files import atomic_write

log = logging.getLogger(__name__)

SCHEMA = 1
RECORD = "record.json"
CONFIG = "config.yaml"  # the resolved config, beside the record
METRICS = "metrics.json"
PER_CATEGORY = "per_category.json"
STATES = ("running", "finished", "failed")
# The config groups whose choices a record keeps (the cell's identity in tables and sweep status).
CHOICE_GROUPS = ("activation", "loss", "detector", "dataset", "sampler", "schedule", "calibration")
# The fields that say where a run's numbers come from (code, hardware, data); also logged in W&B's config.
PROVENANCE = ("git_commit", "git_dirty", "config_file", "versions", "device", "annotations")
# A running record from a process that cannot be probed (another host) counts as alive this long after its
# last update; the engine updates it at every log period and checkpoint, and every minute of inference.
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
    git_commit: str | None = None  # the checkout's commit (older records: with "+dirty" for a dirty tree)
    git_dirty: bool | None = None  # tracked files had uncommitted changes; None outside a checkout (or older)
    config_file: str | None = None  # the resolved config, relative to the run folder (CONFIG)
    versions: dict[str, str | None] = field(default_factory=dict)  # python, torch, torchvision, gol, evaluator
    device: dict[str, Any] = field(default_factory=dict)  # {"type", "count" (processes), "name"}
    # "train" / "val" -> gol.fingerprint of the annotation file read ({"path", "size", "mtime_ns", "sha256"})
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)
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
        for key in ("choices", "owner", "versions", "device", "annotations"):
            values[key] = dict(values.get(key) or {})
        values["overrides"] = [str(o) for o in values.get("overrides") or []]
        values["deviations"] = [str(d) for d in values.get("deviations") or []]
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def provenance(self) -> dict[str, Any]:
        """The ``PROVENANCE`` fields as plain JSON data."""
        data = self.to_json()
        return {name: data[name] for name in PROVENANCE}

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
    """Atomically replace ``path`` with ``payload`` as indented JSON (``gol.files.atomic_write``)."""
    atomic_write(path, lambda f: f.write(json.dumps(payload, indent=2, sort_keys=False) + "\n"))


def write_yaml(path: Path, cfg: DictConfig) -> None:
    """Atomically write the resolved config (every interpolation replaced by its value)."""
    atomic_write(path, lambda f: f.write(OmegaConf.to_yaml(cfg, resolve=True)))


FAILURES = "failures"  # <run dir>/failures/rank<N>.txt: a failed process's own error (gol.distributed writes it)


def first_line(error: BaseException) -> str:
    """``"<Type>: <message>"`` cut to its first line: how a record, a sweep status and a note name an error."""
    return (f"{type(error).__name__}: {error}".strip().splitlines() or [type(error).__name__])[0]


def failure_note(run_dir: Path, world_size: int | None = None) -> str | None:
    """The first error a process of the run's job left (``process N [of M] failed: ...``), None if none did: what a
    job killed before its rank 0 could record the failure (an NCCL job stuck at a collective) still says."""
    notes = []
    for path in (run_dir / FAILURES).glob("rank*.txt"):
        with contextlib.suppress(OSError, ValueError):
            notes.append((path.stat().st_mtime_ns, int(path.stem[4:]), path.read_text().strip()))
    if not notes:
        return None
    _, rank, text = min(notes)  # the earliest: the others' errors are its consequences
    of = "" if world_size is None else f" of {world_size}"
    return f"process {rank}{of} failed: {(text.splitlines() or ['(no message)'])[0]}"


CLAIM = ".claim"  # the run folder's claim: created with O_EXCL by the process that runs it


class ClaimedError(RuntimeError):
    """Another live process has claimed the run folder; ``owner`` is who (host, pid, SLURM job id)."""

    def __init__(self, run_dir: Path, owner: Mapping[str, Any]) -> None:
        super().__init__(f"{run_dir} is being run by another process ({dict(owner)})")
        self.owner = dict(owner)


def claim(run_dir: Path, me: Mapping[str, Any]) -> Path:
    """Claim ``run_dir`` for this process: exactly one of several processes launched on it at once gets it.

    The claim is a file created with ``O_CREAT | O_EXCL`` (atomic on local and network filesystems) holding
    ``me``. A claim already there is judged by the project's one liveness rule, ``Record.is_alive`` (its owner's
    SLURM job, its process on this host, or the run's record updated recently): alive, ClaimedError; dead, or the
    asking process's own (a requeued SLURM job), it is taken over. A takeover holds a second O_EXCL file and judges
    the claim again under it, so two processes that both found a dead claim cannot both take it.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CLAIM
    for _ in range(20):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            _judge(path, run_dir, me)  # ClaimedError when its owner lives
            _take_over(path, run_dir, me)
            continue
        _hold(fd, me)
        return path
    raise ClaimedError(run_dir, {"contended": "the claim kept changing hands; launch again"})


def _hold(fd: int, me: Mapping[str, Any]) -> None:
    """Write the holder of a claim or of the takeover lock into its freshly created file."""
    with os.fdopen(fd, "w") as f:
        json.dump({"owner": dict(me), "claimed_at": now()}, f)


def _judge(path: Path, run_dir: Path, me: Mapping[str, Any]) -> None:
    holder = _claim_holder(path)
    if holder is not None and holder.is_alive(me=me, **_slurm_liveness(holder)):
        raise ClaimedError(run_dir, holder.owner)


def _take_over(path: Path, run_dir: Path, me: Mapping[str, Any]) -> None:
    """Remove a dead claim, under the takeover lock. The lock holds its taker like a claim: one left by a taker that
    died (killed mid-takeover) is removed as soon as that is decidable, else after a minute."""
    lock = path.with_name(CLAIM + ".takeover")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        taker = _claim_holder(lock)
        with contextlib.suppress(FileNotFoundError):
            if (taker is not None and not taker.is_alive(me=me)) or time.time() - lock.stat().st_mtime > 60:
                lock.unlink()
        time.sleep(0.05)
        return
    _hold(fd, me)
    try:
        _judge(path, run_dir, me)  # again, under the lock: another taker may have claimed it meanwhile
        path.unlink(missing_ok=True)
    finally:
        lock.unlink(missing_ok=True)


def _slurm_liveness(holder: Record) -> dict[str, Any]:
    """``is_alive``'s SLURM arguments for a claim owned by a SLURM job: whether squeue still lists that job (empty
    when SLURM cannot be asked, and the heartbeat decides)."""
    job = holder.owner.get("slurm_job_id")
    if not job or shutil.which("squeue") is None:
        return {}
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%i"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        return {}
    live = {line.strip() for line in out.stdout.splitlines() if line.strip()}
    return {"job_id": str(job), "live_jobs": live}


def release(claim_path: Path, me: Mapping[str, Any]) -> None:
    """Give the claim back (when it is still this process's)."""
    holder = _claim_holder(claim_path)
    if holder is not None and holder.owner == dict(me):
        claim_path.unlink(missing_ok=True)


def _claim_holder(path: Path) -> Record | None:
    """The claim's owner as a running Record: its heartbeat is the run's record.json when that is the same owner's,
    else the claim's own time (a claim being written, with no owner yet, counts as fresh)."""
    try:
        stat = path.stat()
        data = json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        data = {}
    owner = dict(data.get("owner") or {}) if isinstance(data, dict) else {}
    updated = dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc).isoformat(timespec="seconds")
    run = read(path.parent)
    if run is not None and run.owner == owner and run.updated_at:
        updated = max(updated, run.updated_at)
    return Record(state="running", owner=owner, updated_at=updated)


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
        """Record the run failed with the error's first line; a record that cannot be written (the disk that
        failed the run is full) is logged and left "running": its owner's process is gone, so it reads as dead."""
        try:
            self.update(state="failed", error=first_line(error))
        except OSError as unwritable:
            log.error("could not record the failure in %s: %s", self.run_dir / RECORD, unwritable)
