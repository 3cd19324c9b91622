"""Submitit launchers for gol sweeps: fill-in, checks before queueing, dry run, preemption marking.

Before anything is queued, :meth:`GolLauncher.launch` composes every job of the sweep, computes its run folder
as Hydra will (``hydra.sweep.dir`` / ``hydra.sweep.subdir``, from the job's overrides) and

1. checks the request against the SLURM cluster (``launch.preflight.check_launcher``) and that each cell's
   global batch splits over the processes of a job (``launch.plan.check_batch_split``);
2. skips cells whose record says finished, or running (``launch.plan.plan_cells``), one log line each;
3. refuses cells to submit that fail the training app's own config checks (``gol.validate``);
4. with ``hydra.launcher.dry_run=true``, prints the cells, jobs and GPU-hours and stops there.

A sweep folder holding runs of another experiment is refused earlier, for every launcher, by
``launch.callbacks.LaunchChecks``.

A refused launch leaves the sweep folder's ``multirun.yaml`` as it was (Hydra rewrites it before launching)
and exits with status 2 after one log line. Skipped cells still get a :class:`JobReturn`: the recorded AP for
finished cells, None for running ones.

What runs inside each job, preemption included, is ``task.py``. Selected by ``conf/hydra/launcher/*.yaml``
through ``_target_`` (schemas in ``config.py``).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from hydra_plugins.gol_launcher.task import TaskRunner
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher
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
    summary,
)
from launch.preflight import PreflightError, ResourceRequest, check_launcher, is_slurm_launcher
from launch.slurm import SlurmUnavailableError

log = logging.getLogger(__name__)

# Refusals before queueing: one log line, exit status 2, nothing submitted.
_REFUSALS = (PreflightError, SlurmUnavailableError, EstimateError, BatchSplitError, CellConfigError)


class _MultirunFile:
    """The sweep folder's ``multirun.yaml`` as it was before this launch (Hydra rewrites it before launching)."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = sweep_dir / "multirun.yaml"
        self.text = self.path.read_text() if self.path.is_file() else None
        self.created = [p for p in (sweep_dir, *sweep_dir.parents) if not p.exists()]  # deepest first

    def restore(self) -> None:
        """Put back the earlier file (or none), and remove the folders this launch created if they are empty."""
        if self.text is not None:
            self.path.write_text(self.text)
            return
        self.path.unlink(missing_ok=True)
        for folder in self.created:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


@contextmanager
def _hydra_config(cfg: DictConfig) -> Iterator[None]:
    """Make ``cfg`` the current Hydra config (for ``${hydra:...}`` interpolations), as ``run_job`` does."""
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        yield
    finally:
        HydraConfig.instance().cfg = previous


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


class GolLauncher(TaskRunner):
    """The submitit plugin's launcher with fill-in, refusal before queueing, a dry run and W&B preemption marking.

    The keys of ``GolLaunchConf`` are taken here; every other key is the plugin's own and goes to its
    constructor unchanged (the plugin takes its keys as ``**params``).
    """

    def __init__(
        self,
        *,
        dry_run: bool = False,
        seconds_per_iter: Mapping[str, float] | None = None,
        num_train_images: Mapping[str, int] | None = None,
        stale_after_min: float = 30.0,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.dry_run = bool(dry_run)
        self.seconds_per_iter = dict(_plain(seconds_per_iter) or {})
        self.num_train_images = dict(_plain(num_train_images) or {})
        self.stale_after = timedelta(minutes=float(stale_after_min))
        self._multirun: _MultirunFile | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self._multirun = _MultirunFile(Path(str(config.hydra.sweep.dir)).resolve())

    # -- in the launching process ------------------------------------------------------------------------------

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        configs = [self._job_config(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        try:
            cells = [self._cell(cfg, sweep_dir) for cfg in configs]
            request = self._preflight()
            self._check_batch_split(cells, configs, sweep_dir)
            planned = plan_cells(cells, sweep_dir, query_slurm=self._is_slurm, stale_after=self.stale_after)
            planned, refusals = self._validate_cells(planned, configs, sweep_dir)
            if self.dry_run:
                for index, error in refusals.items():
                    log.error("refusing %s: %s", planned[index].cell.name(sweep_dir), error)
                runnable = [(p, cfg) for i, (p, cfg) in enumerate(zip(planned, configs, strict=True))
                            if p.submit and i not in refusals]  # fmt: skip
                costs = [self._cost(p, cfg, sweep_dir) for p, cfg in runnable]
                shown = [p for i, p in enumerate(planned) if i not in refusals]
                sys.stdout.write(dry_run_report(shown, costs, sweep_dir=sweep_dir, request=request) + "\n")
        except _REFUSALS as error:
            self._restore_multirun()
            log.error("%s; nothing queued", error)
            raise SystemExit(2) from None
        if self.dry_run:
            self._restore_multirun()
            return [self._skipped_return(cfg, p) for p, cfg in zip(planned, configs, strict=True)]

        log.info("sweep folder %s: %s", sweep_dir, summary(planned))
        returns: dict[int, JobReturn] = {}
        for index, (p, cfg) in enumerate(zip(planned, configs, strict=True)):
            if index in refusals:
                log.error("refusing %s: %s", p.cell.name(sweep_dir), refusals[index])
                returns[index] = self._refused_return(cfg, p, refusals[index])
            elif not p.submit:
                log.info("skipping %s: %s (%s)", p.cell.name(sweep_dir), p.state, p.detail)
                returns[index] = self._skipped_return(cfg, p)
        to_submit = [(i, p) for i, p in enumerate(planned) if p.submit and i not in refusals]
        if to_submit:
            returns.update(zip((i for i, _ in to_submit), self._submit([p for _, p in to_submit], sweep_dir)))
        return [returns[i] for i in range(len(planned))]

    @property
    def _is_slurm(self) -> bool:
        return self._EXECUTOR == "slurm"

    def _launcher_config(self) -> dict[str, Any]:
        assert self.config is not None
        launcher = OmegaConf.to_container(self.config.hydra.launcher, resolve=True)
        assert isinstance(launcher, dict)
        return {str(key): value for key, value in launcher.items()}

    def _preflight(self) -> str:
        """The one-line request check on SLURM; a dry run goes on (with a warning) where SLURM cannot be asked.

        Returns the per-job request in words, for the dry run.
        """
        launcher = self._launcher_config()
        request = ResourceRequest.from_launcher(launcher)
        described = (
            f"{request.nodes} node(s) x {request.tasks_per_node} task(s), {request.gpus} GPU(s), "
            f"{request.cpus_per_node} CPU(s), {request.mem_gb or 'default'} GB, {launcher.get('timeout_min')} min"
        )
        if not is_slurm_launcher(launcher):
            return f"{described} (local processes)"
        described += f" on partition {request.partition or '(default)'}"
        try:
            log.info("preflight: %s", check_launcher(launcher))
        except SlurmUnavailableError as error:
            if not self.dry_run:
                raise
            log.warning("SLURM request not checked: %s", error)
            return f"{described} (not checked: SLURM unavailable)"
        return described

    def _check_batch_split(self, cells: Sequence[JobCell], configs: Sequence[DictConfig], sweep_dir: Path) -> None:
        request = ResourceRequest.from_launcher(self._launcher_config())
        for cell, cfg in zip(cells, configs, strict=True):
            batch = OmegaConf.select(cfg, "schedule.ims_per_batch", default=None)
            if batch is not None:
                check_batch_split(cell.name(sweep_dir), int(batch), request.nodes * request.tasks_per_node)

    def _validate_cells(
        self, planned: Sequence[PlannedCell], configs: Sequence[DictConfig], sweep_dir: Path
    ) -> tuple[list[PlannedCell], dict[int, ValueError]]:
        """The training app's own config checks on every cell to submit (a declared but refused detector, a loss
        that does not take the activation, ...), so that no job is queued only to fail at its start.

        Refused cells are left out and reported (Hydra gets them as failed jobs); the launch is refused as a whole
        only when no cell is left to run.
        """
        from gol.config.train import TrainConfig
        from gol.validate import validate

        refusals: dict[int, ValueError] = {}
        for index, (p, cfg) in enumerate(zip(planned, configs, strict=True)):
            if not p.submit or not issubclass(OmegaConf.get_type(cfg) or object, TrainConfig):
                continue  # finished or running, or the config of another Hydra app (tests/launch/toy_app.py)
            with _hydra_config(cfg):
                try:
                    validate(cfg)
                except ValueError as error:
                    refusals[index] = error
        runnable = [i for i, p in enumerate(planned) if p.submit and i not in refusals]
        if refusals and not runnable:
            index, refusal = next(iter(refusals.items()))
            raise CellConfigError(
                f"every cell to run is refused, e.g. {planned[index].cell.name(sweep_dir)}: {refusal}; fix the "
                "overrides or leave those cells out of the sweep (hydra.sweeper.params)"
            )
        return list(planned), refusals

    @staticmethod
    def _refused_return(cfg: DictConfig, planned: PlannedCell, error: ValueError) -> JobReturn:
        """A refused cell reaches Hydra as a failed job: the sweep's other cells run, then Hydra reports it."""
        job = GolLauncher._skipped_return(cfg, planned)
        job.status = JobStatus.FAILED
        job._return_value = error
        return job

    def _job_config(self, job_num: int, overrides: list[str]) -> DictConfig:
        """The job's full config as the job itself will compose it (``hydra.job.id`` is known only there)."""
        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = job_num
        return cfg

    def _cell(self, cfg: DictConfig, sweep_dir: Path) -> JobCell:
        with _hydra_config(cfg):
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

    def _cost(self, planned: PlannedCell, cfg: DictConfig, sweep_dir: Path) -> CellCost:
        """Schedule length x the detector's seconds per iteration x GPUs per job."""
        choices = cfg.hydra.runtime.choices
        request = ResourceRequest.from_launcher(self._launcher_config())
        with _hydra_config(cfg):
            images = num_train_images(cfg.dataset, choices.get("dataset"), self.num_train_images)
            try:
                iterations = cell_iterations(cfg.schedule, images=images)
            except ValueError as error:  # the engine's own one-line schedule errors
                raise EstimateError(f"cell {planned.cell.name(sweep_dir)}: {error}") from None
        return CellCost(
            name=planned.cell.name(sweep_dir),
            iterations=iterations,
            seconds_per_iteration=seconds_per_iteration(choices.get("detector"), self.seconds_per_iter),
            gpus=request.gpus * request.nodes,
        )

    def _restore_multirun(self) -> None:
        if self._multirun is not None:
            self._multirun.restore()

    @staticmethod
    def _skipped_return(cfg: DictConfig, planned: PlannedCell) -> JobReturn:
        """What Hydra gets for a job not submitted: completed, with the recorded AP of a finished cell."""
        value = None
        folder = planned.cell.folder
        if planned.state == "finished" and folder is not None and (folder / "metrics.json").is_file():
            metrics = json.loads((folder / "metrics.json").read_text())
            value = (metrics.get("segm") or metrics.get("bbox") or {}).get("AP")  # as gol.train returns it
        task_cfg = copy.deepcopy(cfg)
        with open_dict(task_cfg):
            del task_cfg["hydra"]
        return JobReturn(
            overrides=list(planned.cell.overrides),
            cfg=task_cfg,
            hydra_cfg=OmegaConf.create({"hydra": cfg.hydra}),
            working_dir=None if folder is None else str(folder),
            task_name=str(cfg.hydra.job.name),
            status=JobStatus.COMPLETED,
            _return_value=value,
        )

    def _executor(self) -> Any:
        """The submitit executor, set up from the launcher keys exactly as the plugin's ``launch`` does."""
        import submitit

        init_keys = {"submitit_folder", "max_num_timeout"}
        init = {f"{self._EXECUTOR}_{k}": v for k, v in self.params.items() if k == "max_num_timeout"}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=self.params["submitit_folder"], **init)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            (k if k in shared else f"{self._EXECUTOR}_{k}"): v for k, v in self.params.items() if k not in init_keys
        })  # fmt: skip
        return executor

    def _submit(self, planned: Sequence[PlannedCell], sweep_dir: Path) -> list[JobReturn]:
        """Queue the cells as one job array (job numbers as in the full sweep) and wait for every job."""
        assert self.config is not None
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        executor = self._executor()
        params = [
            (list(p.cell.overrides), "hydra.sweep.dir", p.cell.job_num, f"job_id_for_{p.cell.job_num}",
             Singleton.get_state())
            for p in planned
        ]  # fmt: skip
        jobs = executor.map_array(self, *zip(*params))
        for job, p in zip(jobs, planned, strict=True):
            log.info("\t#%d %s: job %s", p.cell.job_num, p.cell.name(sweep_dir), job.job_id)
        returns = []
        for job, p in zip(jobs, planned, strict=True):
            try:
                returns.append(job.results()[0])  # task 0 of a multi-task job is rank 0
            except Exception as error:  # the job died without a result: Hydra reports it after all jobs end
                last = (str(error).strip().splitlines() or [type(error).__name__])[-1]
                log.error("%s: job %s failed: %s", p.cell.name(sweep_dir), job.job_id, last)
                returns.append(JobReturn(overrides=list(p.cell.overrides), status=JobStatus.FAILED,
                                         _return_value=error))  # fmt: skip
        return returns


class PreemptibleSlurmLauncher(GolLauncher, SlurmLauncher):
    """``hydra/launcher=submitit_slurm`` plus fill-in, preflight, dry run and W&B preemption marking."""


class PreemptibleLocalLauncher(GolLauncher, LocalLauncher):
    """``hydra/launcher=submitit_local`` plus fill-in, dry run and W&B preemption marking."""
