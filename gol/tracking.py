"""Experiment tracking: one W&B run per job, beside the local run record (``gol.record``), behind one interface.

The W&B mode comes from ``logger.mode`` or ``WANDB_MODE``; with neither, it is online only when a login exists
and offline otherwise (a warning says so once). Online mode asked for without a login also falls back to offline
with one warning instead of hanging. The run id is derived from the run folder, so a requeued or restarted job
continues the same W&B run.

W&B never takes a run down: if ``wandb.init`` fails or times out (``logger.init_timeout_s``: a compute node
without internet, a bad key, server errors), the run logs offline under the same id, with one warning saying how to
sync it later, and trains on; if W&B fails mid-run, logging goes on in the local record only, with one warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import netrc
import os
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlparse

from gol.config.logger import LoggerConf

log = logging.getLogger(__name__)

WandbMode = Literal["online", "offline", "disabled"]
_MODES = ("online", "offline", "disabled")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def run_id_for(run_dir: Path) -> str:
    """Stable W&B id of the run living in ``run_dir`` (same folder, same id, across requeues)."""
    return hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16]


def has_login() -> bool:
    """True when an API key is available (``WANDB_API_KEY`` or a netrc entry for the W&B host)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def resolve_mode(requested: str | None) -> WandbMode:
    """The W&B mode to use: config, else ``WANDB_MODE``, else online with a login and offline without."""
    mode = requested or os.environ.get("WANDB_MODE") or ("online" if has_login() else "offline")
    if mode == "dryrun":
        mode = "offline"
    if mode not in _MODES:
        raise ValueError(f"logger.mode={mode!r} is not a W&B mode; use one of {', '.join(_MODES)}")
    if mode == "online" and not has_login():
        log.warning(
            "W&B online mode asked for but no login found: logging offline (run `wandb login`, then `wandb sync`)"
        )
        mode = "offline"
    return cast(WandbMode, mode)


class Tracker:
    """Streams losses and learning rate, and writes final metrics, to W&B (when enabled)."""

    def __init__(self, conf: LoggerConf, *, run_dir: Path, run_id: str, group: str, name: str, config: dict[str, Any]):
        self.conf = conf
        self.run: Any = None
        self.mode: WandbMode = "disabled"
        if not conf.enabled:
            return
        import wandb  # imported here: a run with logger=none never pays its import time

        self.mode = resolve_mode(conf.mode)
        if self.mode == "disabled":
            return
        os.environ.setdefault("WANDB_SILENT", "true")
        options: dict[str, Any] = dict(
            project=conf.project,
            entity=conf.entity,
            group=conf.group or group,
            job_type=conf.job_type,
            name=conf.name or name,
            tags=list(conf.tags),
            notes=conf.notes,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            config=config,
            reinit="finish_previous",
        )
        try:
            self.run = wandb.init(
                **options, mode=self.mode, settings=wandb.Settings(init_timeout=conf.init_timeout_s, console="off")
            )
        except Exception as error:  # CommError, timeouts, authentication, server errors: W&B's, not the run's
            if self.mode != "online":
                raise
            log.warning(
                "W&B unreachable (%s): logging offline under the same run id; `wandb sync %s` uploads it later",
                _first_line(error), run_dir / "wandb",
            )  # fmt: skip
            with contextlib.suppress(Exception):
                wandb.teardown()  # the failed attempt's service holds the run id
            self.mode = "offline"
            try:
                self.run = wandb.init(**options, mode="offline", settings=wandb.Settings(console="off"))
            except Exception as offline_error:  # e.g. an unwritable folder: the local record alone goes on
                log.warning("W&B offline failed too (%s): this run is logged in its local record only",
                            _first_line(offline_error))  # fmt: skip
                self.mode, self.run = "disabled", None
                return
        self.run.define_metric("train/*", step_metric="iteration")
        log.info("W&B run %s (%s) in %s", run_id, self.mode, run_dir)

    @property
    def info(self) -> dict[str, Any] | None:
        if self.run is None:
            return None
        return {"id": self.run.id, "project": self.conf.project, "mode": self.mode, "dir": str(self.run.dir)}

    def log(self, values: dict[str, float], *, iteration: int) -> None:
        if self.run is not None:
            try:
                self.run.log({**values, "iteration": iteration})
            except Exception as error:
                self._lost(error)

    def _lost(self, error: BaseException) -> None:
        """W&B failed mid-run: stop using it; the local record (train.log, record.json, metrics.json) goes on."""
        log.warning("W&B failed (%s): the rest of this run is logged in its local record only", _first_line(error))
        run, self.run = self.run, None
        with contextlib.suppress(Exception):
            run.finish(exit_code=1)

    def summarize(self, metrics: dict[str, dict[str, Any]], per_category: dict[str, Any] | None) -> None:
        """Final metrics as ``segm/AP``, ``bbox/APr``, ... (and the evaluation settings, ``eval/segm_area``) in the
        summary; per-category AP as a table."""
        if self.run is None:
            return
        import wandb

        try:
            for iou_type, values in metrics.items():
                for key, value in values.items():
                    self.run.summary[f"{iou_type}/{key}"] = value
            if per_category is not None:
                rows = per_category["categories"]
                columns = list(rows[0]) if rows else ["id"]
                table = wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])
                self.run.log({"per_category_ap": table})
        except Exception as error:
            self._lost(error)

    def finish(self, outcome: str) -> None:
        """End the run: ``finished``, ``failed``, or ``preempted`` (marked so; the requeued job continues it).

        Never raises: on preemption SLURM's signal may already have stopped W&B's service process, and a W&B error
        must not hide the job's own outcome.
        """
        run, self.run = self.run, None
        if run is None:
            return
        try:
            if outcome == "preempted":
                run.mark_preempting()
            run.finish(exit_code=0 if outcome == "finished" else 1)
        except Exception as error:
            log.warning("W&B run %s could not be closed (%s): %s", run.id, outcome, error)
