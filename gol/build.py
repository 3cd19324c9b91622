"""The one place where config nodes become objects (Hydra ``_target_`` + ``instantiate``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from gol.activations import Activation
from gol.data import DataSource
from gol.losses import ClassificationLoss


@dataclass
class Components:
    data: DataSource
    activation: Activation
    loss: ClassificationLoss
    model: nn.Module


def build_data(cfg: DictConfig) -> DataSource:
    """The dataset (validates annotation files and image roots before anything expensive)."""
    return instantiate(cfg.dataset, _convert_="all")


def build_components(cfg: DictConfig, data: DataSource | None = None) -> Components:
    """Data, the shared activation, the classification loss and the detector that holds it."""
    data = data if data is not None else build_data(cfg)
    activation = instantiate(cfg.activation, _convert_="all")
    k = data.stats.num_classes
    loss = instantiate(cfg.loss, _convert_="all")(activation=activation, num_classes=k, stats=data.stats)
    model = instantiate(cfg.detector, _convert_="all")(
        num_classes=k,
        cls_loss=loss,
        train_sizes=list(data.train_sizes),
        test_size=data.test_size,
        max_size=data.max_size,
    )
    return Components(data=data, activation=activation, loss=loss, model=model)


def build_sampler(cfg: DictConfig, dataset: Any) -> Any:
    """The training sampler: an epoch-based index sampler whose order is a function of (seed, epoch)."""
    return instantiate(cfg.sampler, _convert_="all")(dataset=dataset, seed=cfg.seed)
