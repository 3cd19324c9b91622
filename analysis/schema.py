"""The one DataFrame schema every run source produces (local run records, W&B offline pairing, W&B public API).

One row per run. Columns, in this order:

=====================  ===========  =====================================================================
column                 dtype        meaning
=====================  ===========  =====================================================================
source                 str          "local" (a run record folder) or "wandb" (the W&B public API)
run_id                 str          record.json ``run_id``, or the W&B run id
run_dir                str | None   absolute path of the local run folder (None for W&B API rows)
run_path               str | None   "entity/project/run_id" for W&B API rows (None for local rows)
experiment             str | None   record.json ``experiment`` (None for ad-hoc runs)
state                  str          "finished" | "running" | "failed" (W&B crashed/killed map to failed)
error                  str | None   first line of the error of a failed run
activation ... schedule str | None  the Hydra choices: activation, loss, detector, dataset, sampler, schedule
calibration            str | None   the Hydra choice of the test-time calibration (None in older records)
normed_mask            object       bool: ``detector.normed_mask`` of the resolved config (False when the
                                    detector config has no such key); None when no config was found
seed                   Int64        the run's seed (<NA> when not recorded)
iteration, max_iter    Int64        training progress from the record
git_commit             str | None   the commit the run was trained at (an older record's "+dirty" suffix
                                    moves to git_dirty)
git_dirty              object       bool: tracked files had uncommitted changes; None when not recorded
train_ann_sha256       str | None   SHA-256 of the train / val annotation files the run read ("a+b" when resumed on another)
val_ann_sha256                      (record.json ``annotations``, gol.fingerprint); None when not recorded
started_at             str | None   ISO 8601
finished_at            str | None   ISO 8601
overrides              str          the Hydra overrides joined by single spaces
deviations             str          "key=value" settings a paper cell changed from its released config,
                                    joined by "; " ("" when none or not recorded)
wandb_id               str | None   record.json ``wandb.id`` (None when the run was not tracked in W&B)
wandb_project          str | None   record.json ``wandb.project``
wandb_mode             str | None   record.json ``wandb.mode`` ("offline", "online", ...)
wandb_dir              str | None   record.json ``wandb.dir`` resolved against the run folder
wandb_run_dir          str | None   the ``offline-run-*-<id>`` (or ``run-*-<id>``) folder found for the run;
                                    None when unpaired (reported) or not tracked
per_category_path      str | None   path of per_category.json when it exists
segm/AP ... bbox/APf   float64      the 18 LVIS metrics (``segm/`` and ``bbox/`` x AP, AP50, AP75, APs,
                                    APm, APl, APr, APc, APf) as fractions in [0, 1]; NaN where the run has
                                    no value (missing file or key, or null because lvis-api gave -1)
segm_fixed/AP ...      float64      AP-fixed (``segm_fixed/``, ``bbox_fixed/`` x the same 9) and AP-pool
                                    (``segm_pooled/``, ``bbox_pooled/`` x AP, APr, APc, APf) of runs
                                    evaluated with eval.protocols [standard, fixed, pooled]; NaN otherwise
segm_errors_r/Cls ...  float64      the TIDE breakdown of runs evaluated with eval.errors=true
                                    (``<type>_errors_<all|r|c|f>/`` x AP50, Cls, Loc, Both, Dupe, Bkg, Miss):
                                    AP50 and the AP50 each error type costs; NaN otherwise
=====================  ===========  =====================================================================

APb in the paper's tables is ``bbox/AP``; AP, APr, APc and APf are the ``segm/`` (mask) values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from gol.record import CHOICE_GROUPS

CHOICE_FIELDS: tuple[str, ...] = CHOICE_GROUPS  # the choices each run record keeps
# Fields that tell runs apart beyond the Hydra choices (the normalised mask head is a detector option).
SETTING_FIELDS: tuple[str, ...] = (*CHOICE_FIELDS, "normed_mask")

METRIC_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
POOLED_NAMES: tuple[str, ...] = ("AP", "APr", "APc", "APf")
ERROR_NAMES: tuple[str, ...] = ("AP50", "Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")  # gol.evaluation.tide
ERROR_GROUPS: tuple[str, ...] = ("all", "r", "c", "f")
IOU_TYPES: tuple[str, ...] = ("segm", "bbox")
# metrics.json block -> the metrics the frame keeps from it (LVIS AP, then AP-fixed and AP-pool).
METRIC_BLOCKS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(IOU_TYPES, METRIC_NAMES),
    **{f"{iou}_fixed": METRIC_NAMES for iou in IOU_TYPES},
    **{f"{iou}_pooled": POOLED_NAMES for iou in IOU_TYPES},
    **{f"{iou}_errors_{group}": ERROR_NAMES for iou in IOU_TYPES for group in ERROR_GROUPS},
}
METRIC_COLUMNS: tuple[str, ...] = tuple(f"{block}/{name}" for block, names in METRIC_BLOCKS.items() for name in names)

STATES: tuple[str, ...] = ("finished", "running", "failed")

_STRING_COLUMNS: tuple[str, ...] = (
    "source",
    "run_id",
    "run_dir",
    "run_path",
    "experiment",
    "state",
    "error",
    *CHOICE_FIELDS,
)
_INT_COLUMNS: tuple[str, ...] = ("seed", "iteration", "max_iter")
_TAIL_COLUMNS: tuple[str, ...] = (
    "git_commit",
    "git_dirty",
    "train_ann_sha256",
    "val_ann_sha256",
    "started_at",
    "finished_at",
    "overrides",
    "deviations",
    "wandb_id",
    "wandb_project",
    "wandb_mode",
    "wandb_dir",
    "wandb_run_dir",
    "per_category_path",
)
COLUMNS: tuple[str, ...] = (
    *_STRING_COLUMNS,
    "normed_mask",
    *_INT_COLUMNS,
    *_TAIL_COLUMNS,
    *METRIC_COLUMNS,
)


def metric_value(value: Any) -> float:
    """A metric as stored (float, None, or lvis-api's -1 for "undefined") -> float in [0, 1] or NaN."""
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number if number >= 0.0 else float("nan")


def make_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build a DataFrame with exactly `COLUMNS`, in order and with the documented dtypes.

    Keys outside the schema are rejected so that a source cannot silently grow the schema.
    """
    rows = list(rows)
    for row in rows:
        extra = sorted(set(row) - set(COLUMNS))
        if extra:
            raise ValueError(f"run row has keys outside the analysis schema: {extra}")
    frame = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    for column in (*_STRING_COLUMNS, *_TAIL_COLUMNS, "normed_mask"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    for column in _INT_COLUMNS:
        frame[column] = pd.array([None if _is_missing(v) else int(v) for v in frame[column]], dtype="Int64")
    for column in METRIC_COLUMNS:
        frame[column] = frame[column].map(metric_value).astype(np.float64)
    frame["overrides"] = frame["overrides"].map(lambda v: "" if v is None else v)
    frame["deviations"] = frame["deviations"].map(lambda v: "" if v is None else v)
    return frame.reset_index(drop=True)


def provenance_values(git_commit: Any, git_dirty: Any, annotations: Any) -> dict[str, Any]:
    """The provenance columns from a record's fields (or the ``provenance`` block of a W&B run's config); an older
    record's commit with a "+dirty" suffix (and no git_dirty) is that commit, dirty."""
    commit = str(git_commit) if git_commit else None
    dirty = git_dirty if isinstance(git_dirty, bool) else None
    if commit is not None and commit.endswith("+dirty"):
        commit, dirty = commit.removesuffix("+dirty"), True if dirty is None else dirty
    elif commit is not None and dirty is None:
        dirty = False  # such a record would have said "+dirty"
    files = annotations if isinstance(annotations, Mapping) else {}
    digests = {split: _digest(files.get(split) or {}) for split in ("train", "val")}
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "train_ann_sha256": digests["train"],
        "val_ann_sha256": digests["val"],
    }


def _digest(fingerprint: Mapping[str, Any]) -> str | None:
    """The file's SHA-256; a run resumed on a changed file gets all its digests joined ("<earlier>+<now>"), a dataset
    of its own that no table averages or compares with the others."""
    digest = fingerprint.get("sha256")
    earlier = [str(d) for d in fingerprint.get("earlier_sha256") or []]
    return "+".join([*earlier, str(digest)]) if digest and earlier else digest


def empty_frame() -> pd.DataFrame:
    """A frame with the schema and no runs."""
    return make_frame([])


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA
