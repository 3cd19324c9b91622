"""Preemption-aware submitit launchers.

submitit calls the launcher's ``checkpoint`` inside the job when SLURM signals a preemption (USR2) or an
approaching time limit; the plugin's hook resubmits the same task with the same overrides, output folder and
job id, and the training engine resumes from the latest checkpoint in that folder. Here the hook also marks
the active W&B run as preempting, so W&B shows it as preempted (resumable) rather than crashed.
Selected by ``conf/hydra/launcher/*.yaml`` through ``_target_``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    BaseSubmititLauncher,
    LocalLauncher,
    SlurmLauncher,
)

log = logging.getLogger(__name__)


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


class _PreemptionHook(BaseSubmititLauncher):
    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        mark_wandb_preempting()
        return super().checkpoint(*args, **kwargs)


class PreemptibleSlurmLauncher(_PreemptionHook, SlurmLauncher):
    """``hydra/launcher=submitit_slurm`` plus W&B preemption marking."""


class PreemptibleLocalLauncher(_PreemptionHook, LocalLauncher):
    """``hydra/launcher=submitit_local`` plus W&B preemption marking."""
