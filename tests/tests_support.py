"""Helpers shared by the test folders: composing the training config as the app does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from gol.config import register_configs
from gol.config.resolvers import register_resolvers
from gol.train import CONF_DIR


def compose_train(overrides: list[str], tmp_path: Path) -> DictConfig:
    """The composed ``train`` config with Hydra's runtime set, its paths under ``tmp_path``."""
    register_configs()
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose("train", overrides=[f"paths.root={tmp_path}", *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_train(args: list[str], *, cwd: Path, env: dict[str, str] | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m gol.train ARGS`` in a subprocess (the way users run it), W&B offline with no login."""
    full_env = {**os.environ, "HOME": str(cwd), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("WANDB_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "gol.train", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
