"""Provenance checks of a table's cells (pure functions of an `Aggregation`).

- **One dataset per table.** A cell averages its seeds and the table compares its rows, so every run counted in
  it with the same ``dataset`` option must have read the same train and the same val annotation files (by
  SHA-256, ``gol.fingerprint``); else DatasetMismatchError names the cells and digests. Rows of different dataset
  options (the sota table's LVIS v0.5 row) are meant to differ. Runs recorded before fingerprints existed (locally or in
  W&B) cannot be checked: a note says which cells hold them.
- **One code version per table.** A cell with a run trained from a checkout with uncommitted changes is marked
  ``†``; one with a run at another commit than most of the table's runs is marked ``*``; a note under the table
  names the runs and commits.

The runs counted are the finished runs of rows that show numbers (status ``ok``): failed, running and
duplicated runs are not averaged, so they cannot mix anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis.aggregate import Aggregation, RowResult
from analysis.errors import DatasetMismatchError

DIRTY_MARK = "†"
COMMIT_MARK = "*"
SPLITS = ("train", "val")
SHOWN_DIGEST = 12  # hex digits of a SHA-256 or commit shown in messages
SHOWN_RUNS = 5


@dataclass(frozen=True)
class Provenance:
    """What the table shows about provenance: marks per row (index into ``Aggregation.rows``) and notes."""

    marks: Mapping[int, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def check_provenance(aggregation: Aggregation) -> Provenance:
    """Refuse mixed datasets (DatasetMismatchError, one line) and mark cells of a dirty tree or another commit."""
    counted = _counted_runs(aggregation)
    if not counted:
        return Provenance()
    # Rows of different dataset options (the sota table's LVIS v0.5 row beside its v1 rows) are meant to differ.
    by_option: dict[Any, list[tuple[int, RowResult, dict[str, Any]]]] = {}
    for entry in counted:
        option = entry[2].get("dataset")
        by_option.setdefault(option if _known(option) else None, []).append(entry)
    for runs in by_option.values():
        for split in SPLITS:
            _check_one_dataset(aggregation.spec.name, split, runs)
    notes = _unchecked_note(counted)
    marks, code_notes = _code_marks(counted)
    return Provenance(marks=marks, notes=(*notes, *code_notes))


def _counted_runs(aggregation: Aggregation) -> list[tuple[int, RowResult, dict[str, Any]]]:
    """(row index, row, run) for every run whose numbers a cell shows."""
    frame = aggregation.frame
    counted: list[tuple[int, RowResult, dict[str, Any]]] = []
    for index, result in enumerate(aggregation.rows):
        if result.status != "ok":
            continue
        runs = frame[frame["run_id"].isin(result.run_ids) & (frame["state"] == "finished")]
        counted.extend((index, result, run) for run in runs.to_dict("records"))
    return counted


def _known(value: Any) -> bool:
    return value is not None and not pd.isna(value)


def _check_one_dataset(table: str, split: str, counted: Sequence[tuple[int, RowResult, dict[str, Any]]]) -> None:
    column = f"{split}_ann_sha256"
    digests = {run[column] for _, _, run in counted if _known(run[column])}
    if len(digests) < 2:
        return
    by_row: dict[int, set[str]] = {}
    for index, _, run in counted:
        if _known(run[column]):
            by_row.setdefault(index, set()).add(run[column])
    names = {index: result.name for index, result, _ in counted}
    mixed_cells = [names[index] for index, found in by_row.items() if len(found) > 1]
    groups = []
    for digest in sorted(digests):
        cells: dict[int, list[str]] = {}
        for index, _, run in counted:
            if run[column] == digest:
                cells.setdefault(index, []).append(_seed(run))
        shown = ", ".join(
            names[index] if len(by_row[index]) == 1 else f"{names[index]} seed {'/'.join(seeds)}"
            for index, seeds in cells.items()
        )
        groups.append(f"{digest[:SHOWN_DIGEST]} in {shown}")
    what = (
        f"cell(s) {', '.join(repr(c) for c in mixed_cells)} would average runs of different datasets"
        if mixed_cells
        else "its rows would compare runs of different datasets"
    )
    raise DatasetMismatchError(
        f"the {table!r} table mixes {split} annotation files (sha256 {'; '.join(groups)}): {what}; evaluate every "
        f"run against the same {split} file, or pass --runs folders of one dataset only"
    )


def _unchecked_note(counted: Sequence[tuple[int, RowResult, dict[str, Any]]]) -> list[str]:
    lacking = [(result, run) for _, result, run in counted if not all(_known(run[f"{s}_ann_sha256"]) for s in SPLITS)]
    if not lacking:
        return []
    cells = list(dict.fromkeys(result.name for result, _ in lacking))  # in table order
    return [
        f"{len(lacking)} of {len(counted)} runs have no annotation fingerprints (recorded before gol kept them), "
        f"so their datasets could not be checked: {_listed(cells)}"
    ]


def _code_marks(counted: Sequence[tuple[int, RowResult, dict[str, Any]]]) -> tuple[dict[int, str], list[str]]:
    commits = Counter(run["git_commit"] for _, _, run in counted if _known(run["git_commit"]))
    majority = min(commits, key=lambda c: (-commits[c], c)) if commits else None
    dirty: dict[str, list[str]] = {}
    other: dict[str, list[str]] = {}
    found: dict[int, set[str]] = {}
    for index, result, run in counted:
        if _known(run["git_dirty"]) and bool(run["git_dirty"]):
            dirty.setdefault(result.name, []).append(_run(run))
            found.setdefault(index, set()).add(DIRTY_MARK)
        if majority is not None and _known(run["git_commit"]) and run["git_commit"] != majority:
            other.setdefault(result.name, []).append(f"{_run(run)} at {run['git_commit'][:SHOWN_DIGEST]}")
            found.setdefault(index, set()).add(COMMIT_MARK)
    marks = {index: "".join(m for m in (DIRTY_MARK, COMMIT_MARK) if m in kinds) for index, kinds in found.items()}
    notes = []
    if dirty:
        notes.append(
            f"{DIRTY_MARK} trained from a checkout with uncommitted changes: "
            + "; ".join(f"{name} ({_listed(runs)})" for name, runs in dirty.items())
        )
    if other:
        assert majority is not None
        notes.append(
            f"{COMMIT_MARK} trained at another commit than most runs of the table ({majority[:SHOWN_DIGEST]}, "
            f"{commits[majority]} of {sum(commits.values())}): "
            + "; ".join(f"{name} ({_listed(runs)})" for name, runs in other.items())
        )
    return marks, notes


def _seed(run: Mapping[str, Any]) -> str:
    return str(int(run["seed"])) if _known(run["seed"]) else "?"


def _run(run: Mapping[str, Any]) -> str:
    return f"run {run['run_id']}, seed {_seed(run)}"


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN_RUNS])
    return shown + (f", ... ({len(items)} in all)" if len(items) > SHOWN_RUNS else "")
