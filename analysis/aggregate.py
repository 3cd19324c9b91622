"""Runs -> table rows: select an experiment, assign runs to the spec's rows, aggregate seeds (pure functions).

Row status (what a row of "ours" shows):
- ``ok``: at least one seed has a finished run; metrics are the mean and sample std (ddof=1) over seeds.
  Running or failed runs of seeds without a finished run are counted in ``pending`` and shown beside it.
- ``duplicated``: some seed has two or more finished runs with the same settings; nothing is averaged.
- ``running`` / ``failed``: runs exist but none finished (running wins over failed: it may still finish).
- ``missing``: the spec expects the row but no run matches it.
- ``reference``: a reference-only row (published numbers of a method the sweep does not run).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from analysis.errors import MixedRunsError, NoRunsError
from analysis.experiments import ADHOC, ADHOC_SETTINGS, Level, RowSpec, TableSpec, adhoc_spec, get_spec
from analysis.schema import SETTING_FIELDS


@dataclass(frozen=True)
class Stat:
    """One metric of one row, in percent: mean and sample std over seeds, n seeds with a value out of ``of``."""

    mean: float | None
    std: float | None
    n: int
    of: int


@dataclass(frozen=True)
class RowResult:
    """One row of "ours": the runs it holds, its status and per-metric statistics (keyed by frame column)."""

    row: RowSpec
    status: str
    auto: bool
    run_ids: tuple[str, ...]
    seeds: tuple[int, ...]
    stats: Mapping[str, Stat]
    pending: Mapping[str, int]
    settings: Mapping[str, Any]
    deviations: tuple[str, ...] = ()  # settings its finished runs changed from the released config

    @property
    def name(self) -> str:
        return " / ".join(label for label in self.row.labels if label)

    def facet(self, setting: str) -> str | None:
        """Display label of `setting`: the spec's level label, else the runs' common option name."""
        label = self.row.facet(setting)
        if label is None and self.settings.get(setting) is not None:
            label = str(self.settings[setting])
        return label


@dataclass(frozen=True)
class Aggregation:
    spec: TableSpec
    rows: tuple[RowResult, ...]
    messages: tuple[str, ...]
    frame: pd.DataFrame


def select_experiment(
    frame: pd.DataFrame, experiment: str, *, ignore_others: bool = False
) -> tuple[pd.DataFrame, list[str]]:
    """The runs of `experiment` (``"none"``: ad-hoc runs with a null experiment).

    Runs of other experiments raise MixedRunsError unless `ignore_others`, which leaves them out with a message.
    """
    if experiment != ADHOC:
        get_spec(experiment)  # unknown names fail before any work
    found = Counter(_experiment_name(value) for value in frame["experiment"])
    wanted = "ad-hoc" if experiment == ADHOC else experiment
    mine = frame["experiment"].map(_experiment_name) == wanted
    others = ", ".join(f"{name} ({count})" for name, count in sorted(found.items()) if name != wanted)
    if not mine.any():
        seen = others or "none"
        raise NoRunsError(f"no runs of experiment {experiment!r} among {len(frame)} runs (found: {seen})")
    messages: list[str] = []
    if others:
        if not ignore_others:
            raise MixedRunsError(
                f"runs of other experiments mixed into the {experiment!r} table: {others}; pass only that sweep's "
                "folders, or --ignore-other-experiments to leave them out"
            )
        messages.append(f"left out {_plural(int((~mine).sum()), 'run')} of other experiments: {others}")
    return frame.loc[mine].reset_index(drop=True), messages


def spec_for(frame: pd.DataFrame, experiment: str) -> TableSpec:
    """The named spec, or for ``"none"`` one built from the ad-hoc runs (activation/loss/detector + what varies)."""
    if experiment != ADHOC:
        return get_spec(experiment)
    settings = [s for s in SETTING_FIELDS if s in ADHOC_SETTINGS or (s != "dataset" and _distinct(frame[s]) > 1)]
    combos = frame[settings].drop_duplicates().astype(object)
    combos = combos.where(combos.notna(), None)
    records = sorted(combos.to_dict("records"), key=lambda c: tuple(str(c[s]) for s in settings))
    return adhoc_spec(settings, records)


def aggregate(frame: pd.DataFrame, spec: TableSpec) -> Aggregation:
    """Assign the runs of one experiment to the spec's rows and aggregate each row over seeds."""
    messages: list[str] = []
    split = spec.split_settings
    for setting in SETTING_FIELDS:
        if setting not in split and _distinct(frame[setting]) > 1:
            raise MixedRunsError(
                f"runs of the {spec.name!r} table differ in {setting} ({_counts(frame[setting])}), which the table "
                f"does not split by; pass runs of one {setting} only"
            )
    assigned: dict[int, list[int]] = {}
    unmatched: dict[tuple[Any, ...], list[int]] = {}
    for index, run in frame.iterrows():
        settings = run.to_dict()
        target = next((i for i, row in enumerate(spec.rows) if row.expected and row.matches(settings)), None)
        if target is None:
            unmatched.setdefault(tuple(settings[s] for s in split), []).append(index)
        else:
            assigned.setdefault(target, []).append(index)
    results = [
        _row_result(row, frame.loc[assigned.get(i, [])], spec, auto=False, messages=messages)
        for i, row in enumerate(spec.rows)
    ]
    for key, indices in unmatched.items():
        text = " ".join(f"{s}={v}" for s, v in zip(split, key, strict=True) if v is not None)
        labels = (text or "(unmatched)",) + ("",) * (len(spec.label_headers) - 1)
        row = RowSpec(labels=labels, match={s: _level(spec, s, v) for s, v in zip(split, key, strict=True)})
        results.append(_row_result(row, frame.loc[indices], spec, auto=True, messages=messages))
        messages.append(
            f"no row of the {spec.name!r} spec matches {_plural(len(indices), 'run')} with {text}; "
            "shown as an extra row (add the option name to a Level in analysis/experiments.py if it "
            "is a known one)"
        )
    messages.extend(_metric_messages(results, frame, spec))
    return Aggregation(spec=spec, rows=tuple(results), messages=tuple(messages), frame=frame)


def _level(spec: TableSpec, setting: str, value: Any) -> Level:
    """The spec's label for an option value seen in an unmatched run (its raw name when the spec has none)."""
    for row in spec.rows:
        level = row.match.get(setting)
        if level is not None and level.accepts(value):
            return Level(level.label, (value,))
    return Level(str(value), (value,))


def _row_result(row: RowSpec, runs: pd.DataFrame, spec: TableSpec, *, auto: bool, messages: list[str]) -> RowResult:
    name = " / ".join(label for label in row.labels if label)
    for setting in SETTING_FIELDS:
        if _distinct(runs[setting]) > 1:
            raise MixedRunsError(
                f"row {name!r} of the {spec.name!r} table mixes {setting} ({_counts(runs[setting])}); runs of one "
                "row may differ only in seed"
            )
    settings = {s: _common(runs[s]) for s in SETTING_FIELDS}
    empty = {metric.column: Stat(None, None, 0, 0) for metric in spec.metrics}
    if not row.expected:
        return RowResult(row, "reference", auto, (), (), empty, {}, settings)
    if runs.empty:
        return RowResult(row, "missing", auto, (), (), empty, {}, settings)
    seed_keys = runs["seed"].map(lambda s: None if pd.isna(s) else int(s))
    finished = runs[runs["state"] == "finished"]
    finished_seeds = Counter(seed_keys[finished.index])
    unfinished = runs[runs["state"] != "finished"]
    pending = Counter(
        state
        for state, seed in zip(unfinished["state"], seed_keys[unfinished.index], strict=True)
        if seed not in finished_seeds
    )
    messages.extend(_run_messages(name, unfinished, finished, seed_keys, finished_seeds))
    if any(count > 1 for count in finished_seeds.values()):
        return RowResult(row, "duplicated", auto, tuple(runs["run_id"]), (), empty, dict(pending), settings)
    if finished.empty:
        status = "running" if pending.get("running") else "failed"
        return RowResult(row, status, auto, tuple(runs["run_id"]), (), empty, dict(pending), settings)
    seeds = tuple(sorted((seed for seed in finished_seeds if seed is not None), key=int))
    stats = {metric.column: _stat(finished[metric.column]) for metric in spec.metrics}
    deviations = tuple(sorted({d for joined in finished["deviations"] for d in str(joined or "").split("; ") if d}))
    return RowResult(row, "ok", auto, tuple(finished["run_id"]), seeds, stats, dict(pending), settings, deviations)


def _run_messages(
    name: str,
    unfinished: pd.DataFrame,
    finished: pd.DataFrame,
    seed_keys: pd.Series,
    finished_seeds: Counter[int | None],
) -> list[str]:
    """One line each: superseded runs, failed runs that count, duplicated seeds."""
    messages = []
    superseded = [run for run in unfinished.itertuples(index=False) if _seed(run.seed) in finished_seeds]
    if superseded:
        shown = ", ".join(f"{run.run_id} ({run.state}, seed {_seed(run.seed)})" for run in superseded)
        messages.append(f"row {name!r}: superseded by a finished run of the same seed, not counted: {shown}")
    for run in unfinished.itertuples(index=False):
        if run.state == "failed" and _seed(run.seed) not in finished_seeds:
            error = run.error or "no error recorded"
            messages.append(f"row {name!r}: run {run.run_id} (seed {_seed(run.seed)}) failed: {error}")
    duplicated = sorted((seed for seed, count in finished_seeds.items() if count > 1), key=str)
    if duplicated:
        groups = []
        for seed in duplicated:
            same = finished[seed_keys[finished.index] == seed]
            groups.append(f"seed {seed}: {', '.join(_run_name(run) for run in same.itertuples())}")
        messages.append(
            f"row {name!r} is duplicated (several finished runs of one seed, not averaged; keep one): "
            f"{'; '.join(groups)}"
        )
    return messages


def _stat(values: pd.Series) -> Stat:
    present = [100.0 * float(v) for v in values if not math.isnan(v)]
    n = len(present)
    if n == 0:
        return Stat(None, None, 0, len(values))
    mean = sum(present) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in present) / (n - 1)) if n > 1 else None
    return Stat(mean, std, n, len(values))


def _metric_messages(results: Sequence[RowResult], frame: pd.DataFrame, spec: TableSpec) -> list[str]:
    used = [run_id for result in results if result.status == "ok" for run_id in result.run_ids]
    if not used:
        return []
    runs = frame[frame["run_id"].isin(used)]
    messages = []
    for metric in spec.metrics:
        lacking = runs.loc[runs[metric.column].isna(), "run_id"].tolist()
        if len(lacking) == len(runs):
            messages.append(
                f"{metric.column} ({metric.name}) has no value in any of the {len(runs)} finished runs "
                "(null in metrics.json, or no metrics.json); shown as -"
            )
        elif lacking:
            shown = ", ".join(lacking[:5]) + (", ..." if len(lacking) > 5 else "")
            messages.append(
                f"{metric.column} ({metric.name}) is missing in {len(lacking)} of {len(runs)} finished "
                f"runs ({shown}); those cells average the runs that have it (n shown)"
            )
    return messages


def _experiment_name(value: Any) -> str:
    return "ad-hoc" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _present(series: pd.Series) -> list[Any]:
    return [v for v in series if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _distinct(series: pd.Series) -> int:
    # A setting a run did not record (None) is unknown, not different.
    return len({str(v) for v in _present(series)})


def _common(series: pd.Series) -> Any:
    values = _present(series)
    return values[0] if values and _distinct(series) == 1 else None


def _counts(series: pd.Series) -> str:
    return ", ".join(f"{value}: {count}" for value, count in sorted(Counter(map(str, _present(series))).items()))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _run_name(run: Any) -> str:
    if run.run_dir is None:
        return str(run.run_id)
    parts = run.run_dir.replace("\\", "/").rstrip("/").split("/")
    return f"{run.run_id} ({'/'.join(parts[-2:])})"


def _seed(value: Any) -> int | None:
    return None if pd.isna(value) else int(value)
