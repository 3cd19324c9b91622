"""OmegaConf resolvers used by ``conf/train.yaml`` (registered once per process before Hydra composes)."""

from __future__ import annotations

import os
import re
import secrets

from omegaconf import OmegaConf

_UNSAFE = re.compile(r"[^A-Za-z0-9=,._+-]")


def unique_token() -> str:
    """Process id plus a random token; with a microsecond timestamp this makes a run folder collision-free."""
    return f"{os.getpid()}-{secrets.token_hex(3)}"


def cell_dir(override_dirname: str | None) -> str:
    """Folder name of a sweep cell from its overrides (``activation=gumbel,loss=ce``); "default" when none."""
    if not override_dirname:
        return "default"
    return _UNSAFE.sub("-", override_dirname)[:200]


def register_resolvers() -> None:
    """Register ``gol.uid`` (cached: stable within a process) and ``gol.cell_dir`` (idempotent)."""
    if not OmegaConf.has_resolver("gol.uid"):
        OmegaConf.register_new_resolver("gol.uid", unique_token, use_cache=True)
    if not OmegaConf.has_resolver("gol.cell_dir"):
        OmegaConf.register_new_resolver("gol.cell_dir", cell_dir)
