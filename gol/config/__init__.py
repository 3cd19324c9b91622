"""Structured-config schemas for every Hydra config group.

Each module ``gol/config/<group>.py`` defines ``GROUP`` (the Hydra group name) and ``SCHEMAS`` (name -> dataclass).
Every option YAML under ``conf/<group>/`` extends one of these schemas through its defaults list, so a misspelt key
fails when the config is composed instead of being silently ignored.
"""

from __future__ import annotations

import importlib

from hydra.core.config_store import ConfigStore

_GROUP_MODULES = ("activation", "loss", "detector", "dataset", "sampler", "schedule", "logger", "paths", "train")


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent: storing twice replaces the same nodes)."""
    store = ConfigStore.instance()
    for name in _GROUP_MODULES:
        module = importlib.import_module(f"gol.config.{name}")
        for schema_name, node in module.SCHEMAS.items():
            store.store(group=module.GROUP, name=schema_name, node=node)
