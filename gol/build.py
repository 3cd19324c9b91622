"""The one place where config nodes become objects (Hydra ``_target_`` + ``instantiate``)."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import DictConfig
from torch import nn

from gol.activations import Activation
from gol.data import DataSource
from gol.losses import ClassificationLoss


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


def build_data(cfg: DictConfig) -> DataSource:
    """The dataset (validates annotation files and image roots before anything expensive).

    The objects built here live as long as the run: ``gc.freeze`` moves them out of the collector's reach, so no
    collection walks them, and loader workers forked later do not copy their pages by touching their headers."""
    data = instantiate(cfg.dataset)
    gc.freeze()
    return data


def build_components(cfg: DictConfig, data: DataSource | None = None) -> Components:
    """Data, the shared activation, the classification loss and the detector that holds it."""
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
    return Components(data=data, activation=activation, loss=loss, model=model)


def build_sampler(cfg: DictConfig, dataset: Any) -> Any:
    """The training sampler: an epoch-based index sampler whose order is a function of (seed, epoch)."""
    return instantiate(cfg.sampler)(dataset=dataset, seed=cfg.seed)
