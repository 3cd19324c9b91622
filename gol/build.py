"""The one place where config nodes become objects (Hydra ``_target_`` + ``instantiate``)."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig
from torch import nn

from gol import record
from gol.activations import Activation
from gol.activations.calibration import Fracal
from gol.data import DataSource
from gol.data.fractal import STATS_FILE, FracalStats, read_stats
from gol.losses import ClassificationLoss

log = logging.getLogger(__name__)


def instantiate(node: DictConfig) -> Any:
    """``hydra.utils.instantiate`` that lets a builder's own error through unwrapped.

    Hydra wraps whatever a ``_target_`` raises; a bad input (a missing file, a wrong value) must reach the user
    as the builder's one-line message, not as "Error in call to target".
    """
    try:
        return hydra_instantiate(node, _convert_="all")
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, (ValueError, FileNotFoundError)):
            raise cause from None
        raise


@dataclass
class Components:
    data: DataSource
    activation: Activation
    loss: ClassificationLoss
    model: nn.Module
    calibration: Fracal | None = None


def build_data(cfg: DictConfig) -> DataSource:
    """The dataset (validates annotation files and image roots before anything expensive).

    The objects built here live as long as the run: ``gc.freeze`` moves them out of the collector's reach, so no
    collection walks them, and loader workers forked later do not copy their pages by touching their headers."""
    data = instantiate(cfg.dataset)
    gc.freeze()
    return data


def build_components(
    cfg: DictConfig, data: DataSource | None = None, *, run_dir: Path | None = None, save_stats: bool = True
) -> Components:
    """Data, the shared activation, the classification loss and the detector that holds it, scoring with the
    test-time calibration of ``cfg.calibration`` (its statistics saved in, or read from, ``run_dir``)."""
    data = data if data is not None else build_data(cfg)
    activation = instantiate(cfg.activation)
    k = data.stats.num_classes
    loss = instantiate(cfg.loss)(activation=activation, num_classes=k, stats=data.stats)
    model = instantiate(cfg.detector)(
        num_classes=k,
        cls_loss=loss,
        train_sizes=list(data.train_sizes),
        test_size=data.test_size,
        max_size=data.max_size,
    )
    calibration = build_calibration(cfg, data, run_dir=run_dir, save_stats=save_stats)
    calibrate_model(model, calibration)
    return Components(data=data, activation=activation, loss=loss, model=model, calibration=calibration)


def calibrate_model(model: nn.Module, calibration: Fracal | None) -> None:
    """Every classification loss of ``model`` scores with ``calibration`` (a cascade's every stage: its last scores)."""
    for module in list(model.modules()):
        if isinstance(module, ClassificationLoss):
            module.calibrate(calibration)


def build_calibration(cfg: DictConfig, data: DataSource, *, run_dir: Path | None, save_stats: bool) -> Fracal | None:
    """``cfg.calibration`` (None for ``calibration=none``) with its statistics of the training split.

    The statistics a run saved (``run_dir/fracal_stats.json``) are used when they are of the same categories and
    box-counting settings; otherwise they are computed from the training annotations, and saved when the run has
    none yet (``save_stats``: the job's first process), so a run's file is never replaced.
    """
    node = cfg.get("calibration")
    if node is None or "_target_" not in node:
        return None
    settings = (int(node.grid), int(node.min_instances))
    path = None if run_dir is None else Path(run_dir) / STATS_FILE
    stats: FracalStats | None = None
    if path is not None and path.is_file():
        saved = read_stats(path)
        if saved.category_ids == data.stats.category_ids and (saved.grid, saved.min_instances) == settings:
            stats = saved
            log.info("FRACAL statistics from %s", path)
        else:
            log.info("%s holds statistics of other categories or settings; computing them afresh", path)
    if stats is None:
        if not hasattr(data.train, "fracal_stats"):
            raise ValueError(
                f"calibration=fracal needs the box annotations of the training split, which {type(data.train).__name__} "
                "does not have; use calibration=none with this dataset"
            )
        stats = data.train.fracal_stats(grid=settings[0], min_instances=settings[1])
        if path is not None and save_stats and not path.exists():
            record.write_json(path, stats.to_dict())
            log.info("FRACAL statistics saved in %s", path)
    calibration = instantiate(node)(stats=stats)
    if not isinstance(calibration, Fracal):
        raise TypeError(f"calibration._target_ must build a gol.activations.calibration.Fracal, got {calibration!r}")
    return calibration


def build_sampler(cfg: DictConfig, dataset: Any) -> Any:
    """The training sampler: an epoch-based index sampler whose order is a function of (seed, epoch)."""
    return instantiate(cfg.sampler)(dataset=dataset, seed=cfg.seed)
