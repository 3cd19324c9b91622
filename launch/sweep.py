"""``gol-sweep status <sweep dir>``: the state of every cell of a sweep, from the local run records
(``gol-sweep wait`` waits on it: ``launch/wait.py``; ``gol-sweep plan``: ``launch/sweep_plan.py``).

Which cells a sweep has
    By default the sweep's own ``multirun.yaml`` (written by Hydra at every launch): its
    ``hydra.sweeper.params`` and command-line overrides (``hydra.overrides.task``) are expanded exactly as
    Hydra's basic sweeper does (cartesian product, same order). ``--experiment FILE`` expands that file's
    ``hydra.sweeper.params`` instead, which also covers cells no launch has reached yet. Folders of the sweep
    that match none of these cells (from an earlier launch with other overrides) are listed too.
    A cell matches a run folder when all its overrides appear in the folder's ``.hydra/overrides.yaml``.

States
    finished   record.json says finished (segm AP/APr/APc/APf and bbox AP from metrics.json, in %)
    running    record.json says running and either a SLURM job of the sweep with that folder's job id is
               queued or running (a requeued job keeps its id), or the record was updated within
               ``--stale-after-min`` minutes
    failed     record.json says failed (first line of its error), and no SLURM job with that folder's job id is
               queued or running (a preempted job is recorded failed until its requeued attempt starts: running)
    stale      record.json says running but neither of the above: the job died without saying so
    missing    no folder or no record.json yet (a job that is still queued has no folder)

:func:`cells_to_run` gives the cells a re-launch should run: everything but finished and running cells; the
launchers of ``hydra_plugins/gol_launcher`` do the same per job folder with :func:`folder_state`.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from gol import record
from launch.runs import RunFolder, read_run, scan_runs
from launch.slurm import SlurmUnavailableError, live_jobs

log = logging.getLogger(__name__)

STALE_AFTER = record.STALE_AFTER  # the one liveness rule: gol.record.Record.is_alive
STATES = ("finished", "running", "failed", "stale", "missing")
_ARRAY_RANGE = re.compile(r"^(\d+)_\[([^\]]+)\]$")


@dataclass(frozen=True)
class CellStatus:
    overrides: tuple[str, ...]
    state: str  # one of STATES
    run: RunFolder | None
    detail: str


def expand_sweep(overrides: Sequence[str]) -> list[tuple[str, ...]]:
    """Hydra sweep overrides (``loss=ce,eql seed=1``) -> one override tuple per cell, in Hydra's job order."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    (cells,) = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [tuple(cell) for cell in cells]


def params_as_overrides(params: DictConfig | None) -> list[str]:
    """``hydra.sweeper.params`` (None when the sweep is all on the command line) -> overrides."""
    if params is None:
        return []
    return ["=".join((str(key), str(value))) for key, value in params.items()]


def expected_cells_from_multirun(sweep_dir: Path) -> list[tuple[str, ...]]:
    """The cells of the last launch into ``sweep_dir`` (its ``multirun.yaml``)."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass a Hydra multirun folder or --experiment <file>")
    hydra_cfg = OmegaConf.load(path).hydra
    params = params_as_overrides(hydra_cfg.sweeper.get("params"))
    return expand_sweep(params + [str(o) for o in hydra_cfg.overrides.task])


def expected_cells_from_experiment(path: Path) -> list[tuple[str, ...]]:
    """The cells of an experiment file's ``hydra.sweeper.params`` (a ``# @package _global_`` YAML)."""
    if not path.is_file():
        raise FileNotFoundError(f"experiment file {path} not found; pass the path of an experiments/*.yaml file")
    params = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.params", default=None)
    if not params:
        raise ValueError(f"{path} has no hydra.sweeper.params; it defines a single run, not a sweep")
    return expand_sweep(params_as_overrides(params))


def _expand_job_ids(job_id: str) -> set[str]:
    """``12_[3-5,7%2]`` -> {12_3, 12_4, 12_5, 12_7}; other ids unchanged."""
    match = _ARRAY_RANGE.match(job_id)
    if match is None:
        return {job_id}
    array, spec = match.group(1), match.group(2).split("%")[0]
    ids: set[str] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        ids.update(f"{array}_{i}" for i in range(int(first), int(last or first) + 1))
    return ids


def live_job_ids(sweep_dir: Path) -> set[str] | None:
    """Job ids SLURM still has queued or running for this sweep; None when SLURM cannot be asked."""
    try:
        jobs = live_jobs(under=sweep_dir)
    except SlurmUnavailableError as e:
        log.debug("no SLURM job states: %s", e)
        return None
    return set().union(*(_expand_job_ids(j.job_id) for j in jobs))


def _percent(metrics: dict[str, Any], task: str, key: str) -> str:
    value = (metrics.get(task) or {}).get(key)
    return "-" if value is None else f"{100 * value:.1f}"


def _metrics_summary(metrics: dict[str, Any] | None) -> str:
    if metrics is None:
        return "no metrics.json"
    segm = " ".join(f"{k} {_percent(metrics, 'segm', k)}" for k in ("AP", "APr", "APc", "APf"))
    return f"segm {segm} | bbox AP {_percent(metrics, 'bbox', 'AP')}"


def _readable(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h" if minutes < 48 * 60 else f"{minutes // (24 * 60)} days"


def classify(run: RunFolder, live: Collection[str] | None, now: datetime, stale_after: timedelta) -> tuple[str, str]:
    """(state, detail) of one run folder given the job ids SLURM has queued or running (None: unknown)."""
    is_live = live is not None and run.job_id is not None and run.job_id in live
    job = f"job {run.job_id}" if run.job_id else "no job id"
    if run.record is None:
        return (
            ("running", f"{job} started, no record.json yet") if is_live else ("missing", "folder without record.json")
        )
    state = run.state
    if state == "finished":
        return "finished", _metrics_summary(run.metrics)
    if state == "failed":
        error = str(run.record.error or "no error recorded").splitlines()[0]
        if is_live:  # a preempted job is recorded failed until its requeued attempt starts
            return "running", f"{job} queued or running again after: {error}"
        return "failed", error
    updated = run.updated_at
    age = None if updated is None else now - updated
    progress = f"iteration {run.record.iteration}/{run.record.max_iter if run.record.max_iter is not None else '?'}"
    ago = "never updated" if age is None else f"updated {_readable(age)} ago"
    if run.record.is_alive(now=now, job_id=run.job_id, live_jobs=live, stale_after=stale_after):
        return "running", f"{progress}, {ago}, {job}"
    note = record.failure_note(run.path)  # left by a process of a job killed before rank 0 could record it
    if note is not None:
        return "stale", f"{progress}, {ago}, no live SLURM job; {note}"
    return "stale", f"{progress}, {ago}, no live SLURM job; the job died without recording it"


def folder_state(
    path: Path, live: Collection[str] | None, now: datetime, stale_after: timedelta = STALE_AFTER
) -> tuple[str, str]:
    """(state, detail) of the run folder at ``path``, which may not exist yet (``missing``)."""
    if not (path / ".hydra" / "overrides.yaml").is_file():
        return ("missing", "no run folder") if not path.is_dir() else ("missing", "folder without a started job")
    return classify(read_run(path), live, now, stale_after)


_RANK = {"finished": 0, "running": 1, "failed": 2, "stale": 2, "missing": 3}


def sweep_status(
    sweep_dir: Path,
    expected: Sequence[Sequence[str]] | None = None,
    *,
    live: Collection[str] | None = None,
    query_slurm: bool = True,
    now: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> list[CellStatus]:
    """Status of every cell: ``expected`` (default: from multirun.yaml) then unmatched folders.

    ``live`` gives the SLURM job ids still queued or running; by default they are asked from ``squeue``
    (``query_slurm``), and only the records are used where SLURM is not available.
    """
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep folder {sweep_dir} not found; pass the hydra.sweep.dir of a multirun")
    cells = [tuple(c) for c in (expected_cells_from_multirun(sweep_dir) if expected is None else expected)]
    runs = scan_runs(sweep_dir)
    if live is None and query_slurm:
        live = live_job_ids(sweep_dir)
    now = datetime.now().astimezone() if now is None else now
    matched: set[Path] = set()
    statuses = []
    for cell in cells:
        best: tuple[str, str, RunFolder | None] = ("missing", "no run folder", None)
        for run in runs:
            if set(cell) <= set(run.overrides):
                matched.add(run.path)
                state, detail = classify(run, live, now, stale_after)
                if best[2] is None or _RANK[state] < _RANK[best[0]]:
                    best = (state, detail, run)
        statuses.append(CellStatus(overrides=cell, state=best[0], run=best[2], detail=best[1]))
    for run in runs:
        if run.path not in matched:
            state, detail = classify(run, live, now, stale_after)
            statuses.append(CellStatus(overrides=run.overrides, state=state, run=run, detail=detail))
    return statuses


def cells_to_run(
    expected_cells: Sequence[Sequence[str]],
    sweep_dir: Path,
    *,
    query_slurm: bool = True,
    now: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> list[list[str]]:
    """The expected cells a re-launch into ``sweep_dir`` should run: not finished and not running.

    Failed, stale and missing cells are returned in the given order; the engine resumes a cell from the last
    checkpoint in its folder. A sweep folder that does not exist yet means every cell.
    """
    if not sweep_dir.is_dir():
        return [list(c) for c in expected_cells]
    statuses = sweep_status(sweep_dir, expected_cells, query_slurm=query_slurm, now=now, stale_after=stale_after)
    return [list(s.overrides) for s in statuses[: len(expected_cells)] if s.state not in ("finished", "running")]


def format_status(statuses: Sequence[CellStatus], live_count: int | None = None) -> str:
    """A table, one line per cell; overrides shared by every cell are left out of the cell names."""
    shared = set.intersection(*(set(s.overrides) for s in statuses)) if statuses else set()
    names = [" ".join(o for o in s.overrides if o not in shared) or "(single run)" for s in statuses]
    width = max([len("cell"), *map(len, names)])
    lines = [f"{'state':<9} {'cell':<{width}}  details"]
    lines += [f"{s.state:<9} {name:<{width}}  {s.detail}" for s, name in zip(statuses, names, strict=True)]
    counts = Counter(s.state for s in statuses)
    summary = ", ".join([f"{len(statuses)} cells", *(f"{counts[k]} {k}" for k in STATES if counts[k])]).replace(
        ",", ":", 1
    )
    if shared:
        summary += f"; common overrides: {' '.join(sorted(shared))}"
    if live_count is not None:
        summary += f"; {live_count} SLURM jobs of this sweep queued or running"
    return "\n".join([*lines, summary])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gol-sweep", description="Inspect Hydra multirun sweeps of gol.")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="state of every cell of a sweep (see launch/README.md)")
    status.add_argument("sweep_dir", type=Path, help="the sweep's hydra.sweep.dir")
    status.add_argument(
        "--experiment", type=Path, default=None, help="take the cells from this file's hydra.sweeper.params"
    )
    status.add_argument("--stale-after-min", type=float, default=STALE_AFTER.total_seconds() / 60)
    wait = commands.add_parser("wait", help="block until no cell of the sweep is queued or running (launch/README.md)")
    wait.add_argument("sweep_dir", type=Path, help="the sweep's hydra.sweep.dir")
    wait.add_argument(
        "--experiment", type=Path, default=None, help="take the cells from this file's hydra.sweeper.params"
    )
    wait.add_argument("--stale-after-min", type=float, default=STALE_AFTER.total_seconds() / 60)
    plan = commands.add_parser(
        "plan", help="what `gol-train -m OVERRIDES` would submit and cost, as its dry run says; queues nothing"
    )
    plan.add_argument("overrides", nargs="+", help="gol-train's overrides, e.g. experiment=losses hydra/launcher=slurm")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command == "plan":
        return _plan(args.overrides)
    try:
        expected = None if args.experiment is None else expected_cells_from_experiment(args.experiment)
        if args.command == "wait":
            from launch.wait import run_wait

            return run_wait(args.sweep_dir, expected, stale_after=timedelta(minutes=args.stale_after_min))
        live = live_job_ids(args.sweep_dir)
        statuses = sweep_status(
            args.sweep_dir, expected, live=live, query_slurm=False, stale_after=timedelta(minutes=args.stale_after_min)
        )
    except (FileNotFoundError, ValueError) as e:
        log.error("gol-sweep: %s", e)
        return 2
    sys.stdout.write(format_status(statuses, None if live is None else len(live)) + "\n")
    return 0


def _plan(overrides: Sequence[str]) -> int:
    from launch.sweep_plan import REFUSALS, PlanUsageError, compose_sweep, plan_sweep

    try:
        sweep_dir, configs, settings = compose_sweep(overrides)
        report = plan_sweep(configs, sweep_dir, settings, query_slurm=True).report()
    except (PlanUsageError, *REFUSALS) as error:
        log.error("gol-sweep: %s", error)
        return 2
    sys.stdout.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
