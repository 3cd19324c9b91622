"""Read runs from any mix of sources into one frame: local folders and ``wandb:entity/project``.

A W&B project that cannot be reached is reported in one line; the other sources are still used. The call
fails only when no source yields a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis.errors import NoRunsError, WandbUnavailableError
from analysis.experiments import ADHOC
from analysis.records import load_local_runs
from analysis.wandb_api import ADHOC_GROUP, fetch_wandb_runs

WANDB_PREFIX = "wandb:"


def load_runs(
    sources: Sequence[str | Path], *, experiment: str | None = None, wandb_timeout: float = 30.0
) -> tuple[pd.DataFrame, list[str]]:
    """Runs of every source as one frame, plus one-line messages about what was missing or unreachable.

    `experiment` narrows the W&B query (local folders are read whole; the table selects its runs).
    """
    if not sources:
        raise NoRunsError("no run sources given; pass sweep folders or wandb:entity/project")
    local = [Path(s) for s in sources if not str(s).startswith(WANDB_PREFIX)]
    remote = [str(s)[len(WANDB_PREFIX) :] for s in sources if str(s).startswith(WANDB_PREFIX)]
    frames: list[pd.DataFrame] = []
    messages: list[str] = []
    failures: list[str] = []
    if local:
        try:
            frame, local_messages = load_local_runs(local)
            frames.append(frame)
            messages.extend(local_messages)
        except NoRunsError as exc:
            failures.append(str(exc))
    for project in remote:
        try:
            frames.append(fetch_wandb_runs(project, group=_group(experiment), timeout=wandb_timeout))
        except WandbUnavailableError as exc:
            failures.append(str(exc))
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        raise NoRunsError("; ".join(failures) if failures else "the sources hold no runs")
    messages.extend(failures)
    combined = pd.concat(frames, ignore_index=True)
    # A run read both from its record and from W&B counts once; the record is the source of truth.
    local_ids = set(combined.loc[combined["source"] == "local", "wandb_id"].dropna())
    twice = (combined["source"] == "wandb") & combined["run_id"].isin(local_ids)
    if twice.any():
        messages.append(f"{int(twice.sum())} W&B runs also have a local record; the local record is used")
    return combined.loc[~twice].reset_index(drop=True), messages


def _group(experiment: str | None) -> str | None:
    # gol's tracker puts each run in the W&B group of its experiment, ad-hoc runs in "adhoc".
    if experiment is None:
        return None
    return ADHOC_GROUP if experiment == ADHOC else experiment
