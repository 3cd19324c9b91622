"""Schemas of the gol launchers: the submitit plugin's own, plus the keys that fill-in and the dry run read.

Stored at the root of Hydra's ConfigStore as ``gol_slurm_schema`` and ``gol_local_schema`` (not options of
``hydra/launcher``)
(Hydra imports every module of ``hydra_plugins`` when it scans for plugins, before it composes a config);
the presets in ``conf/hydra/launcher/`` extend them, so a misspelt launcher key fails at compose time.
"""

# No `from __future__ import annotations`: Hydra imports plugin modules outside sys.modules, where dataclasses
# cannot resolve string annotations.

from dataclasses import dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore

from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf

# Training images per dataset option, for dry-run schedule lengths of epoch-based schedules: the sizes of the
# released annotation files (LVIS v1 train: 100,170 images; LVIS v0.5 train: 57,263). Generated datasets
# (``num_train`` in their config) are counted from their config instead.
LVIS_TRAIN_IMAGES = {"lvis_v1": 100_170, "lvis_v05": 57_263}


@dataclass
class GolLaunchConf:
    # Print the cells, jobs and GPU-hours of the launch, queue nothing.
    dry_run: bool = False
    # Seconds per training iteration (one global batch) of each detector option on the job's resources;
    # the presets hold estimates, replace them by the train/sec_per_iter a first run logs.
    seconds_per_iter: dict[str, float] = field(default_factory=dict)
    num_train_images: dict[str, int] = field(default_factory=lambda: dict(LVIS_TRAIN_IMAGES))
    # A cell whose record says running counts as running (and is not submitted again) while its SLURM job is
    # queued or running, or its record was updated this recently (as `gol-sweep status --stale-after-min`).
    stale_after_min: float = 30.0
    # Wait for the queued jobs and report each failed cell (true), or return once they are queued (false: the
    # SLURM presets; `gol-sweep wait <sweep dir>` waits later, from any shell).
    wait: bool = True


@dataclass
class GolSlurmConf(SlurmQueueConf, GolLaunchConf):
    _target_: str = "hydra_plugins.gol_launcher.launcher.PreemptibleSlurmLauncher"
    # Arguments of the job's srun (submitit's own key, which the submitit plugin's schema lacks).
    srun_args: Optional[list[str]] = None  # noqa: UP045  (OmegaConf needs typing.Optional)


@dataclass
class GolLocalConf(LocalQueueConf, GolLaunchConf):
    _target_: str = "hydra_plugins.gol_launcher.launcher.PreemptibleLocalLauncher"


SCHEMAS = {"gol_slurm_schema": GolSlurmConf, "gol_local_schema": GolLocalConf}

for _name, _schema in SCHEMAS.items():
    ConfigStore.instance().store(name=_name, node=_schema, provider="gol_launcher")
