"""Submitit launchers for gol sweeps: fill-in, checks before queueing, dry run, preemption marking.

Before anything is queued, :meth:`GolLauncher.launch` composes every job of the sweep and plans it with
``launch.sweep_plan.plan_sweep`` (the request checked against SLURM, the batch split, each cell's state from its
run folder, the training app's own config checks); with ``hydra.launcher.dry_run=true`` it prints the plan and
stops there. Otherwise it skips finished and running cells (one log line each), leaves refused cells out, and
queues the rest through the submitit plugin's own ``launch``.

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import CompactHydraException
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from gol.record import failure_note
from gol.record import read as read_record
from hydra_plugins.gol_launcher.task import TaskRunner
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher
from launch.plan import PlannedCell, summary
from launch.sweep_plan import REFUSALS, PlanSettings, plan_sweep

log = logging.getLogger(__name__)


class CellsFailed(CompactHydraException):
    """Cells of a waited-for sweep failed: Hydra reports it in one line, without a traceback."""


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


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


class GolLauncher(TaskRunner):
    """The submitit plugin's launcher with fill-in, refusal before queueing, a dry run and W&B preemption marking.

    The keys of ``GolLaunchConf`` are taken here, so that they do not reach the plugin's constructor (which takes
    every other key as ``**params``); planning reads them from ``hydra.launcher`` (``PlanSettings.from_launcher``).
    """

    def __init__(
        self,
        *,
        dry_run: bool = False,
        seconds_per_iter: Mapping[str, float] | None = None,
        num_train_images: Mapping[str, int] | None = None,
        stale_after_min: float = 30.0,
        wait: bool = True,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.dry_run = bool(dry_run)
        self.wait = bool(wait)
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
            plan = plan_sweep(configs, sweep_dir, self._settings(), query_slurm=isinstance(self, SlurmLauncher))
            if self.dry_run:
                sys.stdout.write(plan.report() + "\n")
        except REFUSALS as error:
            self._restore_multirun()
            log.error("%s; nothing queued", error)
            raise SystemExit(2) from None
        if self.dry_run:
            self._restore_multirun()
            return [self._skipped_return(cfg, p) for p, cfg in zip(plan.planned, configs, strict=True)]

        log.info("sweep folder %s: %s", sweep_dir, summary(plan.planned))
        returns: dict[int, JobReturn] = {}
        for index, (p, cfg) in enumerate(zip(plan.planned, configs, strict=True)):
            if index in plan.refusals:
                log.error("refusing %s: %s", p.cell.name(sweep_dir), plan.refusals[index])
                returns[index] = self._refused_return(cfg, p, plan.refusals[index])
            elif not p.submit:
                log.info("skipping %s: %s (%s)", p.cell.name(sweep_dir), p.state, p.detail)
                returns[index] = self._skipped_return(cfg, p)
        to_submit = plan.to_submit()
        if to_submit:
            submitted = self._submit([plan.planned[i] for i in to_submit], [configs[i] for i in to_submit])
            returns.update(zip(to_submit, submitted, strict=True))
        return [returns[i] for i in range(len(plan.planned))]

    def _settings(self) -> PlanSettings:
        assert self.config is not None
        launcher = OmegaConf.to_container(self.config.hydra.launcher, resolve=True)
        assert isinstance(launcher, dict)
        return PlanSettings.from_launcher({str(key): value for key, value in launcher.items()})

    @staticmethod
    def _refused_return(cfg: DictConfig, planned: PlannedCell, error: ValueError) -> JobReturn:
        """A refused cell reaches Hydra as a failed job: the sweep's other cells run, then Hydra reports it."""
        job = GolLauncher._skipped_return(cfg, planned)
        job.return_value = error
        job.status = JobStatus.FAILED
        return job

    def _job_config(self, job_num: int, overrides: list[str]) -> DictConfig:
        """The job's full config as the job itself will compose it (``hydra.job.id`` is known only there)."""
        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = job_num
        return cfg

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
        job = JobReturn(
            overrides=list(planned.cell.overrides),
            cfg=task_cfg,
            hydra_cfg=OmegaConf.create({"hydra": cfg.hydra}),
            working_dir=None if folder is None else str(folder),
            task_name=str(cfg.hydra.job.name),
            status=JobStatus.COMPLETED,
        )
        job.return_value = value
        return job

    def _submit(self, planned: Sequence[PlannedCell], configs: Sequence[DictConfig]) -> Sequence[JobReturn]:
        """Queue the cells as one job array (as the submitit plugin's ``launch`` does); with ``wait``, wait for them
        and report each failed cell in one line, else return once they are queued."""
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info("Submitit '%s' sweep output dir : %s", self._EXECUTOR, sweep_dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        arguments = []
        for p in planned:
            overrides = list(p.cell.overrides)
            log.info("\t#%d : %s", p.cell.job_num, " ".join(filter_overrides(overrides)))
            arguments.append((overrides, "hydra.sweep.dir", p.cell.job_num, f"job_id_for_{p.cell.job_num}",
                              Singleton.get_state()))  # fmt: skip
        jobs = self._executor().map_array(self, *zip(*arguments, strict=True))
        ids = sorted({str(job.job_id).split("_")[0] for job in jobs})
        if not self.wait:
            log.info("queued %d cell(s) as job %s; follow them with `gol-sweep status %s`, wait for them with "
                     "`gol-sweep wait %s`", len(jobs), ",".join(ids), sweep_dir, sweep_dir)  # fmt: skip
            return [self._skipped_return(cfg, p) for p, cfg in zip(planned, configs, strict=True)]
        returns = [self._result(job, cfg, p) for job, cfg, p in zip(jobs, configs, planned, strict=True)]
        failed = [r for r in returns if r.status == JobStatus.FAILED]
        if failed:
            summary_error = CellsFailed(f"{len(failed)} cell(s) of the sweep failed (each above; `gol-sweep status "
                                        f"{sweep_dir}` lists them)")  # fmt: skip
            for r in failed:
                r.return_value = summary_error
        return returns

    def _executor(self) -> Any:
        """The submitit executor of the preset's keys, built as the submitit plugin builds it."""
        import submitit

        params = dict(self.params)
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=params.pop("submitit_folder"),
            **{f"{self._EXECUTOR}_max_num_timeout": params.pop("max_num_timeout")}
            if "max_num_timeout" in params
            else {},
        )
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in params.items()})
        return executor

    def _result(self, job: Any, cfg: DictConfig, planned: PlannedCell) -> JobReturn:
        """The job's JobReturn; a cell that failed, or whose job ended without a result, is logged in one line:
        the cell's recorded error, else the error a process of its job left, else the job's own."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        try:
            returned = cast(JobReturn, job.results()[0])
            if returned.status != JobStatus.FAILED:
                return returned
            try:
                returned.return_value  # noqa: B018  (raises the task's error)
                fallback = "failed"
            except Exception as error:
                fallback = _first_line(error)
        except (FailedJobError, UncompletedJobError) as error:
            fallback = _first_line(error)
        folder = planned.cell.folder
        recorded = read_record(folder) if folder is not None else None
        if recorded is not None and recorded.state == "failed" and recorded.error:
            why = recorded.error
        else:
            why = (failure_note(folder) if folder is not None else None) or fallback
        assert self.config is not None
        name = planned.cell.name(Path(str(self.config.hydra.sweep.dir)).resolve())
        log.error("cell %s failed (job %s): %s", name, job.job_id, why)
        failed = self._skipped_return(cfg, planned)
        failed.status = JobStatus.FAILED  # its error, the sweep's summary, is set by _submit
        return failed


class PreemptibleSlurmLauncher(GolLauncher, SlurmLauncher):
    """``hydra/launcher=submitit_slurm`` plus fill-in, preflight, dry run and W&B preemption marking."""


class PreemptibleLocalLauncher(GolLauncher, LocalLauncher):
    """``hydra/launcher=submitit_local`` plus fill-in, dry run and W&B preemption marking."""
