"""What a sweep launch will do, decided before anything is queued: which cells to submit, and what they cost.

The launchers of ``hydra_plugins/gol_launcher`` compose every job of a sweep, compute its run folder as Hydra
will (``hydra.sweep.dir`` / ``hydra.sweep.subdir``) and hand the result here:

- :func:`check_experiment`: a sweep folder belongs to one experiment; records of another one in it are refused.
- :func:`check_batch_split`: the global batch of a cell must split evenly over the processes of its job.
- :func:`plan_cells`: each cell's state from its run folder (:func:`launch.sweep.folder_state`): finished and
  running cells are skipped, failed, stale and missing ones are submitted (the engine resumes a cell from the
  latest checkpoint in its folder).
- :func:`cell_iterations` and :func:`dry_run_report`: the schedule length of a cell and the GPU-hours of the
  cells a launch would submit.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from launch.cost import CellCost, gpu_hours_table
from launch.runs import scan_runs
from launch.sweep import STALE_AFTER, STATES, folder_state, live_job_ids

log = logging.getLogger(__name__)

SKIPPED_STATES = ("finished", "running")


class SweepFolderError(ValueError):
    """The sweep folder holds cells of another experiment."""


class EstimateError(ValueError):
    """A dry run lacks a number it needs (seconds per iteration of a detector, images of a dataset)."""


class BatchSplitError(ValueError):
    """A cell's global batch cannot be split evenly over the processes of its job."""


class CellConfigError(ValueError):
    """A cell's config fails the training app's own checks (``gol.validate``)."""


@dataclass(frozen=True)
class JobCell:
    """One job of a sweep, as composed by the launcher before submission."""

    job_num: int  # hydra.job.num
    overrides: tuple[str, ...]
    folder: Path | None  # None: hydra.sweep.subdir cannot be resolved before the job runs (it uses hydra.job.id)
    experiment: str | None

    def name(self, sweep_dir: Path) -> str:
        """The cell's folder below the sweep folder (its overrides, with conf/train.yaml's subdir)."""
        if self.folder is not None and self.folder.is_relative_to(sweep_dir):
            return str(self.folder.relative_to(sweep_dir))
        return " ".join(self.overrides) or "(no overrides)"


@dataclass(frozen=True)
class PlannedCell:
    cell: JobCell
    state: str  # one of launch.sweep.STATES
    detail: str

    @property
    def submit(self) -> bool:
        return self.state not in SKIPPED_STATES


def _experiment_name(experiment: str | None) -> str:
    return f"experiment '{experiment}'" if experiment else "an ad-hoc sweep (no experiment)"


def check_experiment(sweep_dir: Path, experiments: Collection[str | None]) -> None:
    """Refuse a sweep folder whose run records belong to another experiment than this launch's."""
    if not sweep_dir.is_dir():
        return
    runs = scan_runs(sweep_dir)
    foreign = [r for r in runs if r.record is not None and r.record.experiment not in experiments]
    if not foreign:
        return
    theirs = foreign[0].record.experiment if foreign[0].record else None
    ours = " and ".join(sorted(_experiment_name(e) for e in experiments))
    raise SweepFolderError(
        f"sweep folder {sweep_dir} holds {len(foreign)} run(s) of {_experiment_name(theirs)} "
        f"(e.g. {foreign[0].path.name}) but this launch is {ours}; "
        f"launch into another folder with hydra.sweep.dir=<path>"
    )


def plan_cells(
    cells: Sequence[JobCell],
    sweep_dir: Path,
    *,
    query_slurm: bool,
    now: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> list[PlannedCell]:
    """Each cell's state from its run folder; ``query_slurm`` asks squeue which jobs of the sweep still live."""
    live = live_job_ids(sweep_dir) if query_slurm and sweep_dir.is_dir() else None
    now = datetime.now().astimezone() if now is None else now
    planned = []
    for cell in cells:
        if cell.folder is None:
            planned.append(PlannedCell(cell, "missing", "run folder known only once the job runs"))
        else:
            planned.append(PlannedCell(cell, *folder_state(cell.folder, live, now, stale_after)))
    return planned


def summary(planned: Sequence[PlannedCell]) -> str:
    """``3 cells: 2 finished, 1 failed; 1 to submit``."""
    counts = Counter(p.state for p in planned)
    states = ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s])
    submit = sum(p.submit for p in planned)
    return f"{len(planned)} cells: {states}; " + (f"{submit} to submit" if submit else "nothing to submit")


def check_batch_split(name: str, ims_per_batch: int, processes: int) -> None:
    """The engine splits the global batch (``schedule.ims_per_batch``) evenly over a job's processes."""
    if ims_per_batch % processes:
        raise BatchSplitError(
            f"cell {name}: schedule.ims_per_batch={ims_per_batch} (the global batch) cannot be split over the "
            f"{processes} processes of a job (hydra.launcher.nodes x tasks_per_node); use a multiple of {processes} "
            f"or change hydra.launcher.tasks_per_node"
        )


def num_train_images(dataset: Mapping[str, Any], dataset_name: str | None, estimates: Mapping[str, int]) -> int:
    """Training images of a cell's dataset: its own ``num_train`` (generated data) or the launcher's estimate."""
    if dataset.get("num_train") is not None:
        return int(dataset["num_train"])
    if dataset_name is not None and dataset_name in estimates:
        return int(estimates[dataset_name])
    raise EstimateError(
        f"no training image count for dataset '{dataset_name}'; add +hydra.launcher.num_train_images.{dataset_name}=N"
    )


def cell_iterations(schedule: Any, *, images: int) -> int:
    """Iterations of a cell's schedule, as the engine computes them (epochs x images // global batch).

    An epoch is taken as one pass over the images; a repeat-factor sampler's epoch is longer (its repeats),
    so epoch-based RFS cells are underestimated by that factor.
    """
    from gol.optim import resolve_length  # the engine's own rule; imported late, it pulls in torch

    iters_per_epoch = max(1, images // int(schedule.ims_per_batch))
    return resolve_length(schedule, iters_per_epoch=iters_per_epoch)[0]


def seconds_per_iteration(detector: str | None, table: Mapping[str, float]) -> float:
    if detector is not None and detector in table:
        return float(table[detector])
    raise EstimateError(
        f"no seconds per iteration for detector '{detector}'; add +hydra.launcher.seconds_per_iter.{detector}=S "
        f"(measured train/sec_per_iter) to the command line or the launcher preset"
    )


def dry_run_report(planned: Sequence[PlannedCell], costs: Sequence[CellCost], *, sweep_dir: Path, request: str) -> str:
    """What a launch would do: every cell with its state, the jobs it would queue and their GPU-hours."""
    names = [p.cell.name(sweep_dir) for p in planned]
    width = max([len("cell"), *map(len, names)])
    lines = [f"dry run: sweep folder {sweep_dir}", f"{'state':<9} {'cell':<{width}}  action"]
    for p, name in zip(planned, names, strict=True):
        action = "submit" if p.submit else "skip"
        lines.append(f"{p.state:<9} {name:<{width}}  {action} ({p.detail})")
    jobs = sum(p.submit for p in planned)
    lines.append(summary(planned))
    lines.append(f"{jobs} job(s), each: {request}")
    if costs:
        lines += ["", gpu_hours_table(costs)]
        lines.append(
            f"GPU-hours: {sum(c.gpu_hours for c in costs):.1f} = iterations x hydra.launcher.seconds_per_iter "
            f"x GPUs per job, summed over the {len(costs)} job(s) to submit"
        )
    lines.append("nothing queued (hydra.launcher.dry_run=true)")
    return "\n".join(lines)
