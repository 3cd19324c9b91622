"""Source (a): the local run records of sweep folders -> the analysis DataFrame (schema in `analysis.schema`).

A run folder holds ``record.json`` (state, choices, seed, provenance, ...), ``metrics.json`` (LVIS metrics of
the final evaluation), ``per_category.json`` and the resolved ``config.yaml``. Any folder may be given: it is walked for
``record.json`` files (W&B and submitit folders are skipped). The record is the source of truth for metrics
even when the run was tracked in W&B, because offline ``.wandb`` files cannot be read back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from analysis.errors import NoRunsError
from analysis.offline import pair_offline_runs
from analysis.schema import CHOICE_FIELDS, METRIC_BLOCKS, make_frame, metric_value, provenance_values
from gol.record import RECORD, SCHEMA, STATES, Record

RECORD_FILE = RECORD
_SKIPPED_PARTS = frozenset({"wandb", ".submitit", ".hydra", "checkpoints"})


def find_run_dirs(root: Path) -> list[Path]:
    """Every run folder (a folder holding record.json) under `root`, `root` itself included, sorted."""
    root = Path(root)
    if not root.exists():
        raise NoRunsError(f"runs folder {root} does not exist; pass a sweep or run folder holding record.json files")
    if root.is_file():
        if root.name != RECORD_FILE:
            raise NoRunsError(f"{root} is a file but not a {RECORD_FILE}; pass a sweep or run folder")
        return [root.parent.resolve()]
    found = []
    for folder, children, files in os.walk(root):
        # Prune W&B, submitit, Hydra and checkpoint folders: large, and never a run folder.
        children[:] = sorted(child for child in children if child not in _SKIPPED_PARTS)
        if RECORD_FILE in files:
            found.append(Path(folder).resolve())
    return sorted(set(found))


def read_run(run_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """One schema row from a run folder, plus one-line messages about what is missing in it."""
    run_dir = Path(run_dir)
    messages: list[str] = []
    data = _read_json(run_dir / RECORD_FILE)
    if not isinstance(data, dict):
        raise ValueError(f"{run_dir / RECORD_FILE} does not hold a JSON object")
    record = Record.from_json(data)
    if record.schema != SCHEMA:
        messages.append(f"{run_dir}: record.json schema {record.schema!r}, expected {SCHEMA}; read as schema {SCHEMA}")
    state = record.state
    if state not in STATES:
        messages.append(f"{run_dir}: record.json state {state!r} is not finished/running/failed; counted as failed")
        state = "failed"
    choices = record.choices
    wandb = record.wandb or {}
    wandb_dir = wandb.get("dir")
    if wandb_dir is not None and not Path(wandb_dir).is_absolute():
        wandb_dir = str((run_dir / wandb_dir).resolve())
    row: dict[str, Any] = {
        "source": "local",
        "run_id": str(record.run_id or run_dir.name),
        "run_dir": str(run_dir),
        "run_path": None,
        "experiment": record.experiment,
        "state": state,
        "error": record.error,
        **{field: _optional_str(choices.get(field)) for field in CHOICE_FIELDS},
        "normed_mask": _normed_mask(run_dir / "config.yaml"),
        "seed": record.seed,
        "iteration": record.iteration,
        "max_iter": record.max_iter,
        **provenance_values(record.git_commit, record.git_dirty, record.annotations),
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "overrides": " ".join(record.overrides),
        "deviations": "; ".join(record.deviations),
        "wandb_id": wandb.get("id"),
        "wandb_project": wandb.get("project"),
        "wandb_mode": wandb.get("mode"),
        "wandb_dir": wandb_dir,
        "wandb_run_dir": None,
        "per_category_path": None,
    }
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        metrics = _read_json(metrics_file)
        for block_name, names in METRIC_BLOCKS.items():
            block = metrics.get(block_name) or {}
            for name in names:
                row[f"{block_name}/{name}"] = block.get(name)
    elif state == "finished":
        messages.append(f"{run_dir}: finished run has no metrics.json; its metrics count as missing")
    per_category = run_dir / "per_category.json"
    if per_category.is_file():
        row["per_category_path"] = str(per_category)
    return row, messages


def load_local_runs(roots: Sequence[Path]) -> tuple[pd.DataFrame, list[str]]:
    """Read every run record under `roots` and pair each with its W&B folder.

    Returns the frame and the one-line messages (unreadable records, missing files, unpaired W&B runs).
    Raises NoRunsError when no record.json exists under any root.
    """
    run_dirs: list[Path] = []
    for root in roots:
        run_dirs.extend(find_run_dirs(Path(root)))
    run_dirs = sorted(set(run_dirs))
    if not run_dirs:
        shown = ", ".join(str(r) for r in roots)
        raise NoRunsError(f"no {RECORD_FILE} found under {shown}; pass sweep folders written by gol-train/gol-sweep")
    rows: list[dict[str, Any]] = []
    messages: list[str] = []
    for run_dir in run_dirs:
        try:
            row, run_messages = read_run(run_dir)
        except (OSError, ValueError, yaml.YAMLError) as exc:  # json.JSONDecodeError is a ValueError
            messages.append(f"{run_dir}: unreadable run record ({exc}); run left out")
            continue
        rows.append(row)
        messages.extend(run_messages)
    frame = make_frame(rows)
    frame, pairing_messages = pair_offline_runs(frame)
    return frame, messages + pairing_messages


def load_per_category(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-category AP of the runs in `frame` that have a per_category.json, one row per (run, category).

    Columns: run_id, run_dir, category_id, name, frequency, image_count, segm_AP, bbox_AP (fractions, NaN where
    undefined).
    """
    records: list[dict[str, Any]] = []
    for run in frame.itertuples(index=False):
        path = run.per_category_path
        if path is None:
            continue
        data = _read_json(Path(path))
        for category in data.get("categories", []):
            records.append(
                {
                    "run_id": run.run_id,
                    "run_dir": run.run_dir,
                    "category_id": int(category["id"]),
                    "name": category.get("name"),
                    "frequency": category.get("frequency"),
                    "image_count": int(category.get("image_count") or 0),
                    "segm_AP": metric_value(category.get("segm_AP")),
                    "bbox_AP": metric_value(category.get("bbox_AP")),
                }
            )
    columns = ["run_id", "run_dir", "category_id", "name", "frequency", "image_count", "segm_AP", "bbox_AP"]
    return pd.DataFrame.from_records(records, columns=columns)


def _normed_mask(config_file: Path) -> bool | None:
    if not config_file.is_file():
        return None
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    detector = config.get("detector") if isinstance(config, dict) else None
    if not isinstance(detector, dict):
        return None
    # Detectors without the option build the plain FCN mask head.
    return bool(detector.get("normed_mask", False))


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)
