"""Structured-config schemas for every Hydra config group.

Each module ``gol/config/<group>.py`` defines ``GROUP`` (the Hydra group name) and ``SCHEMAS`` (name -> dataclass).
Every option YAML under ``conf/<group>/`` extends one of these schemas through its defaults list
(``- /gumbel_schema@_here_``), so a misspelt key fails when the config is composed instead of being silently ignored.
The schemas are stored at the root of Hydra's ConfigStore, not in their group: a schema is not an option, so
``--help`` does not list it and ``activation=gumbel_schema`` is refused like any unknown option.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from hydra.core.config_store import ConfigStore

# The config groups (conf/ beside the package in a checkout or an editable install).
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")

_GROUP_MODULES = (
    "activation",
    "loss",
    "calibration",
    "detector",
    "dataset",
    "sampler",
    "schedule",
    "logger",
    "paths",
    "train",
)


def register_configs() -> None:
    """Store every schema at the root of Hydra's ConfigStore (idempotent: storing twice replaces the same nodes)."""
    store = ConfigStore.instance()
    for name in _GROUP_MODULES:
        module = importlib.import_module(f"gol.config.{name}")
        for schema_name, node in module.SCHEMAS.items():
            store.store(name=schema_name, node=node)
