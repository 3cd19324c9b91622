"""A whole sweep planned from its job configs before anything is queued: the launchers' checks and dry run, and
``gol-sweep plan``.

:func:`plan_sweep` takes every job's composed config (with its ``hydra`` node) and

1. checks the launcher's request against the SLURM cluster (``launch.preflight``; a dry run goes on, with a
   warning, where SLURM cannot be asked) and that each cell's global batch splits over a job's processes;
2. reads each cell's state from its run folder: finished and running cells are skipped (``launch.plan``);
3. runs the training app's own config checks (``gol.validate``) on every cell to submit; refused cells are
   left out, and the launch is refused as a whole only when no cell is left.

A refusal raises one of ``REFUSALS`` (one line, naming the fix). :meth:`SweepPlan.report` is the dry run:
every cell with its state and action, the per-job request and the GPU-hours of the cells to submit.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gol.record import STALE_AFTER
from launch.cost import CellCost
from launch.plan import (
    BatchSplitError,
    CellConfigError,
    EstimateError,
    JobCell,
    PlannedCell,
    cell_iterations,
    check_batch_split,
    dry_run_report,
    num_train_images,
    plan_cells,
    seconds_per_iteration,
)
from launch.preflight import PreflightError, ResourceRequest, check_launcher, is_slurm_launcher
from launch.slurm import SlurmUnavailableError

log = logging.getLogger(__name__)

# Refusals before queueing: one line each, nothing submitted.
REFUSALS = (PreflightError, SlurmUnavailableError, EstimateError, BatchSplitError, CellConfigError)


@dataclass(frozen=True)
class PlanSettings:
    """The launcher preset's keys that planning reads (``hydra.launcher``, schema ``GolLaunchConf``)."""

    launcher: Mapping[str, Any]  # the whole resolved hydra.launcher node
    dry_run: bool = False
    seconds_per_iter: Mapping[str, float] = field(default_factory=dict)
    num_train_images: Mapping[str, int] = field(default_factory=dict)
    stale_after: timedelta = STALE_AFTER

    @classmethod
    def from_launcher(cls, launcher: Mapping[str, Any]) -> PlanSettings:
        return cls(
            launcher=launcher,
            dry_run=bool(launcher.get("dry_run", False)),
            seconds_per_iter=dict(launcher.get("seconds_per_iter") or {}),
            num_train_images=dict(launcher.get("num_train_images") or {}),
            stale_after=timedelta(minutes=float(launcher.get("stale_after_min", STALE_AFTER.total_seconds() / 60))),
        )

    @property
    def request(self) -> ResourceRequest:
        return ResourceRequest.from_launcher(self.launcher)


@contextmanager
def hydra_config(cfg: DictConfig) -> Iterator[None]:
    """Make ``cfg`` the current Hydra config (for ``${hydra:...}`` interpolations), as ``run_job`` does."""
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        yield
    finally:
        HydraConfig.instance().cfg = previous


@dataclass
class SweepPlan:
    """What a launch into ``sweep_dir`` will do with each of its jobs (``configs``, in job order)."""

    sweep_dir: Path
    settings: PlanSettings
    configs: list[DictConfig]
    planned: list[PlannedCell]
    refusals: dict[int, ValueError]  # job index -> why its cell is left out
    request: str  # the per-job request in words

    def to_submit(self) -> list[int]:
        return [i for i, p in enumerate(self.planned) if p.submit and i not in self.refusals]

    def report(self) -> str:
        """The dry run: every cell with its state and action, the jobs, and the GPU-hours of those to submit."""
        for index, error in self.refusals.items():
            log.error("refusing %s: %s", self.planned[index].cell.name(self.sweep_dir), error)
        costs = [cell_cost(self.planned[i], self.configs[i], self.sweep_dir, self.settings) for i in self.to_submit()]
        shown = [p for i, p in enumerate(self.planned) if i not in self.refusals]
        return dry_run_report(shown, costs, sweep_dir=self.sweep_dir, request=self.request)


def job_cell(cfg: DictConfig, sweep_dir: Path) -> JobCell:
    """A job's cell: its number, overrides, run folder (as Hydra will name it) and experiment."""
    with hydra_config(cfg):
        try:
            folder: Path | None = (sweep_dir / str(cfg.hydra.sweep.subdir)).resolve()
        except OmegaConfBaseException as error:
            log.warning("run folder of job %d unknown before it runs (%s): it is submitted", cfg.hydra.job.num,
                        str(error).splitlines()[0])  # fmt: skip
            folder = None
    return JobCell(
        job_num=int(cfg.hydra.job.num),
        overrides=tuple(str(o) for o in cfg.hydra.overrides.task),
        folder=folder,
        experiment=cfg.hydra.runtime.choices.get("experiment"),
    )


def describe_request(settings: PlanSettings) -> str:
    """The per-job request in words, checked against SLURM for the SLURM presets (a dry run goes on, with a
    warning, where SLURM cannot be asked)."""
    launcher, request = settings.launcher, settings.request
    described = (
        f"{request.nodes} node(s) x {request.tasks_per_node} task(s), {request.gpus} GPU(s), "
        f"{request.cpus_per_node} CPU(s), {request.mem_gb or 'default'} GB, {launcher.get('timeout_min')} min"
    )
    if not is_slurm_launcher(dict(launcher)):
        return f"{described} (local processes)"
    described += f" on partition {request.partition or '(default)'}"
    try:
        log.info("preflight: %s", check_launcher(dict(launcher)))
    except SlurmUnavailableError as error:
        if not settings.dry_run:
            raise
        log.warning("SLURM request not checked: %s", error)
        return f"{described} (not checked: SLURM unavailable)"
    return described


def validate_cells(
    planned: Sequence[PlannedCell], configs: Sequence[DictConfig], sweep_dir: Path
) -> dict[int, ValueError]:
    """The training app's own config checks on every cell to submit (a declared but refused detector, a loss
    that does not take the activation, ...), so that no job is queued only to fail at its start."""
    from gol.config.train import TrainConfig
    from gol.validate import validate

    refusals: dict[int, ValueError] = {}
    for index, (p, cfg) in enumerate(zip(planned, configs, strict=True)):
        if not p.submit or not issubclass(OmegaConf.get_type(cfg) or object, TrainConfig):
            continue  # finished or running, or the config of another Hydra app (tests/launch/toy_app.py)
        with hydra_config(cfg):
            try:
                validate(cfg)
            except ValueError as error:
                refusals[index] = error
    if refusals and not [i for i, p in enumerate(planned) if p.submit and i not in refusals]:
        index, refusal = next(iter(refusals.items()))
        raise CellConfigError(
            f"every cell to run is refused, e.g. {planned[index].cell.name(sweep_dir)}: {refusal}; fix the "
            "overrides or leave those cells out of the sweep (hydra.sweeper.params)"
        )
    return refusals


def cell_cost(planned: PlannedCell, cfg: DictConfig, sweep_dir: Path, settings: PlanSettings) -> CellCost:
    """Schedule length x the detector's seconds per iteration x GPUs per job."""
    choices = cfg.hydra.runtime.choices
    request = settings.request
    with hydra_config(cfg):
        images = num_train_images(cfg.dataset, choices.get("dataset"), settings.num_train_images)
        try:
            iterations = cell_iterations(cfg.schedule, images=images)
        except ValueError as error:  # the engine's own one-line schedule errors
            raise EstimateError(f"cell {planned.cell.name(sweep_dir)}: {error}") from None
    return CellCost(
        name=planned.cell.name(sweep_dir),
        iterations=iterations,
        seconds_per_iteration=seconds_per_iteration(choices.get("detector"), settings.seconds_per_iter),
        gpus=request.gpus * request.nodes,
    )


def plan_sweep(
    configs: Sequence[DictConfig], sweep_dir: Path, settings: PlanSettings, *, query_slurm: bool
) -> SweepPlan:
    """Plan a launch of ``configs`` (every job's composed config, in job order) into ``sweep_dir``.

    Raises one of ``REFUSALS`` when the launch as a whole cannot go ahead.
    """
    cells = [job_cell(cfg, sweep_dir) for cfg in configs]
    request = describe_request(settings)
    processes = settings.request.nodes * settings.request.tasks_per_node
    for cell, cfg in zip(cells, configs, strict=True):
        with hydra_config(cfg):  # experiments pick the batch by ${hydra:runtime.choices...}
            batch = OmegaConf.select(cfg, "schedule.ims_per_batch", default=None)
        if batch is not None:
            check_batch_split(cell.name(sweep_dir), int(batch), processes)
    planned = plan_cells(cells, sweep_dir, query_slurm=query_slurm, stale_after=settings.stale_after)
    refusals = validate_cells(planned, configs, sweep_dir)
    return SweepPlan(sweep_dir, settings, list(configs), list(planned), refusals, request)


class PlanUsageError(ValueError):
    """``gol-sweep plan`` was given a sweep it cannot plan."""


def compose_sweep(overrides: Sequence[str]) -> tuple[Path, list[DictConfig], PlanSettings]:
    """Every job's config of ``gol-train -m OVERRIDES`` as the launcher will compose it, the sweep folder and the
    launcher's planning settings, without launching anything (``gol-sweep plan``)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from gol.config import CONF_DIR, register_configs
    from gol.config.resolvers import register_resolvers
    from launch.sweep import expand_sweep, params_as_overrides

    register_configs()
    register_resolvers()
    GlobalHydra.instance().clear()
    fixed = [o for o, parsed in zip(overrides, OverridesParser.create().parse_overrides(list(overrides)), strict=True)
             if not parsed.is_sweep_override()]  # fmt: skip
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        master = compose("train", overrides=fixed, return_hydra_config=True)
        cells = expand_sweep(params_as_overrides(master.hydra.sweeper.get("params")) + list(overrides))
        configs = []
        for num, cell in enumerate(cells):
            cfg = compose("train", overrides=list(cell), return_hydra_config=True)
            with open_dict(cfg.hydra.job):
                cfg.hydra.job.num = num
            configs.append(cfg)
    launcher = configs[0].hydra.launcher
    if not str(launcher.get("_target_", "")).startswith("hydra_plugins.gol_launcher."):
        raise PlanUsageError(
            "gol-sweep plan needs a gol launcher preset; add hydra/launcher=slurm (or local_cluster, local)"
        )
    with hydra_config(configs[0]):
        sweep_dir = Path(str(configs[0].hydra.sweep.dir)).resolve()
        resolved = OmegaConf.to_container(launcher, resolve=True)
    assert isinstance(resolved, dict)
    settings = PlanSettings.from_launcher({str(k): v for k, v in resolved.items()})
    return sweep_dir, configs, dataclasses.replace(settings, dry_run=True)
