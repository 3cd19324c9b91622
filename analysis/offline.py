"""Source (b): pair each local run record with its W&B run folder.

The record's ``wandb`` field names the run id and a ``dir``: W&B writes the run under
``<init dir>/wandb/offline-run-<timestamp>-<id>/`` (``run-<timestamp>-<id>`` when online), and gol's tracker
records ``wandb.run.dir``, the ``files/`` folder inside it. A requeued offline run leaves one folder per
segment; the newest one is recorded. A sweep copied elsewhere keeps absolute dirs of its old place, so the
run folder's own ``wandb/`` is searched as well. wandb has no reader for ``.wandb`` files, so the
pairing only checks that the folder exists; the metrics stay those of the local record.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

_PREFIXES = ("offline-run-", "run-")


def find_wandb_run_dirs(run_id: str, *places: Path) -> list[Path]:
    """The W&B run folders of `run_id` found from `places`, oldest first.

    A place may be the folder given to ``wandb.init(dir=...)`` (its ``wandb/`` child holds the run folders),
    the ``wandb/`` folder itself, or a path inside a run folder (``wandb.run.dir`` is its ``files/`` child).
    Sibling segments of the same id (requeued offline runs) are found too.
    """
    roots: set[Path] = set()
    for place in map(Path, places):
        roots.update((place, place / "wandb"))
        for ancestor in (place, *list(place.parents)[:3]):
            if _is_run_folder(ancestor, run_id):
                roots.add(ancestor.parent)
    found = {
        candidate.resolve()
        for root in roots
        if root.is_dir()
        for candidate in root.glob(f"*-{run_id}")
        if candidate.is_dir() and _is_run_folder(candidate, run_id)
    }
    # The folder name starts with the launch timestamp, so name order is time order.
    return sorted(found, key=_timestamp)


def _is_run_folder(folder: Path, run_id: str) -> bool:
    return folder.name.startswith(_PREFIXES) and folder.name.endswith(f"-{run_id}")


def _timestamp(folder: Path) -> str:
    name = folder.name
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def pair_offline_runs(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Fill ``wandb_run_dir`` for every local row whose record names a W&B run.

    Returns the frame and at most one message listing the runs whose W&B folder is missing.
    """
    frame = frame.copy()
    unpaired: list[tuple[str, str]] = []
    for index, run in frame.iterrows():
        if run["source"] != "local" or run["wandb_id"] is None:
            continue
        # The recorded dir first; the run folder too, for sweeps copied away from where they ran.
        places = [Path(p) for p in (run["wandb_dir"], run["run_dir"]) if p is not None]
        folders = find_wandb_run_dirs(str(run["wandb_id"]), *places)
        if folders:
            frame.at[index, "wandb_run_dir"] = str(folders[-1])
        else:
            unpaired.append((str(run["run_id"]), str(run["run_dir"])))
    messages = []
    if unpaired:
        tracked = int(frame["wandb_id"].notna().sum())
        shown = ", ".join(run_id for run_id, _ in unpaired[:8]) + (", ..." if len(unpaired) > 8 else "")
        messages.append(
            f"{len(unpaired)} of {tracked} W&B-tracked runs have no W&B run folder (e.g. none in their record's "
            f"wandb.dir nor in {unpaired[0][1]}/wandb); their metrics come from record.json: {shown}"
        )
    return frame, messages
