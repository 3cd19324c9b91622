"""Checks of a launch that hold for every launcher, run by Hydra before it makes any folder (``conf/train.yaml``,
``hydra.callbacks``).

- The output folders (the run or sweep folder, ``paths.output_root``, ``paths.data_root``) must be creatable: a
  file where a folder must go is refused in one line naming it.
- A sweep folder belongs to one experiment (:func:`launch.plan.check_experiment`): re-launching an experiment
  fills in its folder, launching another one into it is refused.

A refusal is one log line ending in ``nothing run`` and exit status 2, before any cell starts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from launch.plan import SweepFolderError, check_experiment

log = logging.getLogger(__name__)


class OutputFolderError(ValueError):
    """A file stands where an output folder must go."""


def check_folder(path: Path, what: str, key: str) -> None:
    """Refuse ``path`` when it, or a folder above it, exists as something other than a folder."""
    for place in (path, *path.parents):
        if place.exists() and not place.is_dir():
            raise OutputFolderError(
                f"{what} {path} cannot be made: {place} is a file; move it away or set {key} to another folder"
            )
        if place.exists():
            return


def _refuse(error: Exception) -> None:
    log.error("%s; nothing run", error)
    raise SystemExit(2) from None


def _check_paths(config: DictConfig) -> None:
    paths = config.paths
    check_folder(Path(str(paths.output_root)), "output folder", "GOL_OUTPUT (or paths.output_root)")
    check_folder(Path(str(paths.data_root)), "data folder", "GOL_DATA (or paths.data_root)")


class LaunchChecks(Callback):
    """Refuse a launch whose folders cannot be made, or a sweep into another experiment's folder."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            _check_paths(config)
            check_folder(Path(str(config.hydra.run.dir)), "run folder", "hydra.run.dir")
        except OutputFolderError as error:
            _refuse(error)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        try:
            _check_paths(config)
            check_folder(sweep_dir, "sweep folder", "hydra.sweep.dir")
            check_experiment(sweep_dir, {config.hydra.runtime.choices.get("experiment")})
        except (OutputFolderError, SweepFolderError) as error:
            _refuse(error)
