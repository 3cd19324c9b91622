"""OmegaConf resolvers used by ``conf/train.yaml`` (registered once per process before Hydra composes)."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from typing import Any

from hydra.core.hydra_config import HydraConfig
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


def sweep_dir(experiment: str | None, scale: str | None) -> str:
    """Sweep folder under ``paths.output_root``: fixed per experiment (and scale), so that launching an
    experiment again finds its finished cells; a fresh, collision-free folder for ad-hoc sweeps."""
    if experiment:
        return f"sweeps/{experiment}" + (f"-{scale}" if scale and scale != "full" else "")
    return f"multirun/{dt.datetime.now():%Y-%m-%d_%H-%M-%S-%f}_{unique_token()}"


def launch_dir() -> str:
    """The folder the command was typed in: Hydra's ``runtime.cwd`` inside a job (on a SLURM node too, that is the
    launching shell's folder), else this process's own. A sweep resolves its folder before Hydra sets its runtime
    config, where ``${hydra:runtime.cwd}`` would fail; both are the same folder then."""
    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.cwd)
    return os.getcwd()


def by_key(key: str, table: dict[str, Any]) -> Any:
    """``table[key]`` (or ``table["default"]``): a setting that depends on another choice, e.g. the official
    test NMS per activation. A key missing from the table, with no default, is an error naming both."""
    if key in table:
        return table[key]
    if "default" in table:
        return table["default"]
    raise ValueError(f"gol.by: no entry for {key!r} in {dict(table)}; add it or a 'default' entry")


def register_resolvers() -> None:
    """Register the ``gol.*`` resolvers (idempotent); ``gol.uid`` and ``gol.sweep_dir`` are cached per process."""
    for name, fn, cached in (
        ("gol.uid", unique_token, True),
        ("gol.launch_dir", launch_dir, False),
        ("gol.cell_dir", cell_dir, False),
        ("gol.sweep_dir", sweep_dir, True),
        ("gol.by", by_key, False),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=cached)
