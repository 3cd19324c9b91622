"""What the gol launchers do inside each task of a submitted job: run the cell, and handle preemption.

submitit unpickles the launcher in every task of the job and calls it (:meth:`TaskRunner.__call__`); on
preemption (SLURM's USR2) or an approaching time limit it calls :meth:`TaskRunner.checkpoint` in the task
process, which marks the active W&B run as preempting and resubmits the same task; submitit then requeues the
job (same id, same overrides, same run folder) and the engine resumes from the folder's latest checkpoint.

- Every task of a multi-task job runs the cell (the engine joins them in one process group); only rank 0 writes
  Hydra's ``.hydra/`` files.
- SLURM signals every process of the job step: processes the task forks (data loader workers) would run
  submitit's handler too, so they ignore the preemption signal.
- A W&B service token inherited from the submitting process (``WANDB_SERVICE``, which wandb sets in any process
  that used it) names a service on the login node, possibly another machine: the task drops it and starts its
  own, so two attempts of one cell never meet in a service that still holds the first attempt's run.
- A task of a multi-task job whose cell failed with its own error exits with it: with the presets'
  ``--kill-on-bad-exit`` SLURM then ends the other tasks at once (rank 0 records the failing rank's error,
  ``gol.distributed``).
- When requeueing, SLURM also stops the task's helper processes (W&B's service), so the task may end in an
  error instead of submitit's exit: a task that fails after :meth:`checkpoint` leaves no result, and the
  launcher waits for the requeued attempt instead of reporting a failure.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

log = logging.getLogger(__name__)

WANDB_SERVICE_VARIABLE = "WANDB_SERVICE"  # wandb.env.SERVICE, named here so the task need not import wandb


def mark_wandb_preempting() -> bool:
    """Mark the active W&B run of this process as preempting; return whether there was one.

    wandb is looked up in ``sys.modules`` rather than imported: a task that never imported it has no run,
    and importing it in a signal handler would only cost time before the kill.
    """
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is None:
        log.warning("job preempted or timed out; no active W&B run to mark; resubmitting")
        return False
    run.mark_preempting()
    log.warning("job preempted or timed out; marked W&B run %s as preempting; resubmitting", run.id)
    return True


class TaskRunner(BaseSubmititLauncher):
    """The in-job half of the gol launchers (the launching half is ``launcher.GolLauncher``)."""

    _preempted = False  # set in the task process by checkpoint()

    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        """Run the job's task in this SLURM task (every task of a multi-task job runs it; rank 0 records): the
        plugin's own ``__call__``, with gol's set-up before it and the preemption outcome after it."""
        import submitit
        from submitit.core.utils import UncompletedJobError

        from gol.config.resolvers import register_resolvers

        self._preempted = False
        os.environ.pop(WANDB_SERVICE_VARIABLE, None)  # the submitting process's service, see the module docstring
        # Processes forked by the task (data loader workers) inherit submitit's handler of the preemption signal,
        # which SLURM sends to every process of the step: only the task itself may checkpoint and requeue.
        os.register_at_fork(after_in_child=_ignore_preemption_signal)
        register_resolvers()  # the job process never ran gol.train.main, which registers them
        if submitit.JobEnvironment().global_rank > 0:
            sweep_overrides = [*sweep_overrides, "hydra.output_subdir=null"]  # rank 0 alone writes .hydra/
        returned = super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
        if self._preempted and returned.status == JobStatus.FAILED:
            try:
                returned.return_value  # noqa: B018  (raises the task's error)
            except UncompletedJobError:
                pass  # raised when no requeue is left: a failure like any other
            except Exception as error:
                # The task failed while being stopped for the requeue (SLURM's SIGTERM also stops helper
                # processes such as W&B's service). No result: the requeued job gives the cell's result.
                first = (str(error).strip().splitlines() or [""])[0]
                log.warning(
                    "task stopped by the preemption (%s: %s); the requeued job continues it",
                    type(error).__name__,
                    first,
                )
                raise SystemExit(-1) from None
        if returned.status == JobStatus.FAILED and submitit.JobEnvironment().num_tasks > 1:
            try:
                returned.return_value  # noqa: B018  (raises the task's error)
            except Exception as error:
                from gol.distributed import lost_peer

                if not lost_peer(error):
                    # Its own error: the task exits with it, so that SLURM (srun --kill-on-bad-exit) ends the
                    # job's other tasks now instead of leaving them at a collective until its timeout. Losing
                    # another task (its failure, or its stop for a requeue) is no reason to.
                    raise
        return returned

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit in the job on preemption or time-out: mark W&B, resubmit the same task."""
        mark_wandb_preempting()
        self._preempted = True
        return super().checkpoint(*args, **kwargs)


def _ignore_preemption_signal() -> None:
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")  # submitit's variable for the preemption signal
    signal.signal(getattr(signal, f"SIG{name}", signal.SIGUSR2), signal.SIG_IGN)
