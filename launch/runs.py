"""The run folders of a sweep, read from disk: Hydra's overrides and job id, the run record and the metrics.

A sweep folder holds one folder per cell (whatever ``hydra.sweep.subdir`` names it), each with Hydra's
``.hydra/overrides.yaml`` and ``.hydra/hydra.yaml`` (written when the job starts), and the run's own
``record.json`` and ``metrics.json`` (schema in the project README). Cells are identified by their overrides,
never by folder name, so re-launches that number jobs differently still find their folders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from gol import record
from gol.record import Record

log = logging.getLogger(__name__)

# Cell folders sit right below the sweep folder with the default subdir; allow two more levels for subdirs
# that contain a slash.
_OVERRIDE_FILES = ("*/.hydra/overrides.yaml", "*/*/.hydra/overrides.yaml", "*/*/*/.hydra/overrides.yaml")


@dataclass(frozen=True)
class RunFolder:
    path: Path
    overrides: tuple[str, ...]
    job_id: str | None  # hydra.job.id: the SLURM job id (``<array>_<task>``) under the submitit launcher
    record: Record | None  # record.json, None when absent or unreadable
    metrics: dict[str, Any] | None  # metrics.json

    @property
    def state(self) -> str | None:
        return None if self.record is None else self.record.state

    @property
    def updated_at(self) -> datetime | None:
        """The record's ``updated_at`` as an aware datetime (a naive stamp is taken as local time)."""
        return None if self.record is None else self.record.updated()


def read_run(path: Path) -> RunFolder:
    """Read one run folder (``path`` holds ``.hydra/overrides.yaml``)."""
    overrides = tuple(str(o) for o in OmegaConf.load(path / ".hydra" / "overrides.yaml"))
    job_id = None
    hydra_yaml = path / ".hydra" / "hydra.yaml"
    if hydra_yaml.is_file():
        job_id = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.job.id", default=None)
    return RunFolder(
        path=path,
        overrides=overrides,
        job_id=None if job_id is None else str(job_id),
        record=record.read(path),
        metrics=record.read_json(path / record.METRICS),
    )


def scan_runs(sweep_dir: Path) -> list[RunFolder]:
    """Every run folder below ``sweep_dir``, sorted by path."""
    files = sorted({f for pattern in _OVERRIDE_FILES for f in sweep_dir.glob(pattern)})
    return [read_run(f.parent.parent) for f in files if ".submitit" not in f.parts]
