"""Aggregated rows -> a table in the paper's layout, with the published numbers and the difference to them.

Each spec row becomes a group of lines:
- ``ours``: the regenerated numbers (mean +- std over seeds) or the row's status (missing, running, failed,
  duplicated);
- ``published``: the published numbers the row is compared with, tagged with their source (``~`` = read off
  a plot);
- ``delta``: ours minus published, computed from the numbers as displayed (one decimal).
An ``ours`` line carries the provenance marks of its cell (``analysis.provenance``: ``†`` a run from a dirty
tree, ``*`` a run at another commit than most of the table), explained in the notes.
The best value of each column is bold, among our lines and, separately, among the published lines (as the paper);
a column whose values are all equal has no bold value.
Values are percentages (x100).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd

from analysis.aggregate import Aggregation, RowResult, aggregate, select_experiment, spec_for
from analysis.experiments import PROTOCOL_METRICS, Metric
from analysis.provenance import Provenance, check_provenance
from analysis.published import PUBLISHED, Published

DISPLAY_DECIMALS = 1


@dataclass(frozen=True)
class Value:
    """A displayed number: ``mean`` (percent) with optional ``std``; ``n`` of ``of`` seeds had a value."""

    mean: float | None
    std: float | None = None
    n: int = 1
    of: int = 1
    approximate: bool = False
    bold: bool = False

    @property
    def shown(self) -> float | None:
        """The mean rounded as displayed (None when there is no value)."""
        return None if self.mean is None else round(self.mean, DISPLAY_DECIMALS)


@dataclass(frozen=True)
class Line:
    """One line of a table. ``values`` has one entry per metric column; None means a blank cell."""

    labels: tuple[str, ...]
    kind: str
    source: str
    status: str
    values: tuple[Value | None, ...]
    seeds: tuple[int, ...]
    first_in_group: bool
    marks: str = ""  # provenance marks of an "ours" line (analysis.provenance)


@dataclass(frozen=True)
class Table:
    experiment: str
    title: str
    label_headers: tuple[str, ...]
    metrics: tuple[Metric, ...]
    lines: tuple[Line, ...]
    notes: tuple[str, ...]


def make_table(
    frame: pd.DataFrame, experiment: str, *, ignore_others: bool = False, protocols: Sequence[str] = ()
) -> Table:
    """Select the experiment's runs from `frame`, aggregate them over seeds and lay out the table; ``protocols``
    ("fixed", "pooled") add their mask AP, APr, APc and APf columns beside the paper's."""
    runs, messages = select_experiment(frame, experiment, ignore_others=ignore_others)
    spec = spec_for(runs, experiment)
    extra = tuple(metric for protocol in protocols for metric in PROTOCOL_METRICS[protocol])
    aggregation = aggregate(runs, replace(spec, metrics=(*spec.metrics, *extra)))
    table = build_table(aggregation, check_provenance(aggregation))
    return replace(table, notes=(*messages, *table.notes))


def build_table(aggregation: Aggregation, provenance: Provenance | None = None) -> Table:
    """Lay out aggregated rows with their published reference and delta lines, mark the best values and, given
    the provenance of the cells, their marks and notes."""
    spec = aggregation.spec
    provenance = provenance or Provenance()
    lines: list[Line] = []
    sources: dict[str, Published] = {}
    for index, result in enumerate(aggregation.rows):
        group_lines: list[Line] = []
        if result.status != "reference":
            ours = _ours_line(result, spec.metrics)
            group_lines.append(replace(ours, marks=provenance.marks.get(index, "")))
        reference = PUBLISHED[result.row.published] if result.row.published else None
        if reference is not None:
            sources[reference.source] = reference
            group_lines.append(_published_line(result, reference, spec.metrics))
            if result.status == "ok":
                delta = _delta_line(group_lines[0], group_lines[-1])
                if any(v is not None for v in delta.values):
                    group_lines.append(delta)
        for position, line in enumerate(group_lines):
            lines.append(replace(line, first_in_group=position == 0))
    lines = _bold_best(lines, "ours", len(spec.metrics))
    lines = _bold_best(lines, "published", len(spec.metrics))
    notes = [*aggregation.messages, *provenance.notes]
    notes.extend(f"{tag}: {reference.citation}" for tag, reference in sources.items())
    return Table(
        experiment=spec.name,
        title=spec.title,
        label_headers=spec.label_headers,
        metrics=spec.metrics,
        lines=tuple(lines),
        notes=tuple(notes),
    )


def _ours_line(result: RowResult, metrics: Sequence[Metric]) -> Line:
    values: tuple[Value | None, ...]
    if result.status == "ok":
        values = tuple(
            Value(mean=stat.mean, std=stat.std, n=stat.n, of=stat.of)
            for stat in (result.stats[metric.column] for metric in metrics)
        )
        parts = [f"{len(result.run_ids)} seeds"] if len(result.run_ids) > 1 else []
        parts.extend(f"+{count} {state}" for state, count in sorted(result.pending.items()))
        if result.deviations:
            parts.append(f"deviates from the released config: {', '.join(result.deviations)}")
        source = f"ours ({', '.join(parts)})" if parts else "ours"
    else:
        values = tuple(None for _ in metrics)
        source = "ours"
    return Line(
        labels=result.row.labels,
        kind="ours",
        source=source,
        status=result.status,
        values=values,
        seeds=result.seeds,
        first_in_group=True,
    )


def _published_line(result: RowResult, reference: Published, metrics: Sequence[Metric]) -> Line:
    values = tuple(
        Value(mean=reference.values[m.name], approximate=reference.approximate) if m.name in reference.values else None
        for m in metrics
    )
    return Line(
        labels=result.row.labels,
        kind="published",
        source=reference.source,
        status="published",
        values=values,
        seeds=(),
        first_in_group=False,
    )


def _delta_line(ours: Line, published: Line) -> Line:
    values: list[Value | None] = []
    for mine, theirs in zip(ours.values, published.values, strict=True):
        if mine is None or theirs is None or mine.shown is None or theirs.shown is None:
            values.append(None)
        else:
            values.append(Value(mean=mine.shown - theirs.shown, approximate=theirs.approximate))
    return Line(
        labels=ours.labels,
        kind="delta",
        source="delta",
        status="delta",
        values=tuple(values),
        seeds=(),
        first_in_group=False,
    )


def _bold_best(lines: list[Line], kind: str, width: int) -> list[Line]:
    best: list[float | None] = []
    for column in range(width):
        cells = [line.values[column] for line in lines if line.kind == kind]
        shown = [cell.shown for cell in cells if cell is not None and cell.shown is not None]
        # All equal (or a single value): no row is best, nothing is bold.
        best.append(max(shown) if len(set(shown)) > 1 else None)
    marked = []
    for line in lines:
        if line.kind != kind:
            marked.append(line)
            continue
        values = tuple(
            None if value is None else replace(value, bold=value.shown is not None and value.shown == best[column])
            for column, value in enumerate(line.values)
        )
        marked.append(replace(line, values=values))
    return marked
