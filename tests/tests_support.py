"""Helpers shared by the test folders: composing the training config as the app does."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from gol.config import CONF_DIR, register_configs
from gol.config.resolvers import register_resolvers

REPO = Path(__file__).resolve().parents[1]


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


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user without a W&B login (HOME=``home``) and without GOL_* / WANDB_* settings;
    ``extra`` adds documented variables (``GOL_DATA=...``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOL_", "WANDB_"))}
    return {**env, "HOME": str(home), "PYTHONUNBUFFERED": "1", **extra}


# The ImageNet files the paper's detectors start from (gol/config/detector.py; the X101 cells' open-mmlab file).
IMAGENET_FILES = (
    "resnet50-0676ba61.pth",
    "resnet101-63fe2227.pth",
    "resnext101_64x4d-173b62eb.pth",
    "resnext101_64x4d-ee2c6f71.pth",
)


def weights_folder(folder: Path) -> dict[str, str]:
    """A user's GOL_WEIGHTS folder holding the ImageNet files by name (placeholders: enough for the checks and
    dry runs that only look for them, never for building a model). Returns the environment that names it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in IMAGENET_FILES:
        (folder / name).write_bytes(b"")
    return {"GOL_WEIGHTS": str(folder)}


def run_train(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``gol-train ARGS`` typed in ``cwd`` (the console script, in a subprocess) by a user without a W&B login,
    so W&B logs offline; ``env`` adds variables."""
    gol_train = Path(sys.executable).with_name("gol-train")
    return subprocess.run([str(gol_train), *args], cwd=cwd, env=user_env(cwd, **(env or {})), capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def checkout_copy(folder: Path) -> Path:
    """``folder`` made a copy of this checkout as a fresh clone has it (tracked and untracked-not-ignored files,
    their times kept so that make finds its targets up to date), with the checkout's ``.venv`` linked in."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, folder / name, follow_symlinks=False)
    if (REPO / ".venv").is_dir():
        (folder / ".venv").symlink_to(REPO / ".venv")
    return folder


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a process group's store)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
