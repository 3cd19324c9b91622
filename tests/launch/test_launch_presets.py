"""The launcher presets compose on the plugin's schemas, select the preemption-aware launchers, and the hook
marks a real (offline) W&B run as preempting."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import submitit
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.gol_launcher.launcher import PreemptibleLocalLauncher, PreemptibleSlurmLauncher
from hydra_plugins.gol_launcher.task import mark_wandb_preempting

Preset = Callable[..., DictConfig]


def resolved(launcher: DictConfig) -> dict[str, Any]:
    container = OmegaConf.to_container(launcher, resolve=True)
    assert isinstance(container, dict)
    return container


def test_slurm_preset_is_the_paper_job(launcher_preset: Preset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOL_SLURM_PARTITION", raising=False)
    monkeypatch.setenv("GOL_SLURM_ACCOUNT", "lab42")
    cfg = resolved(launcher_preset("slurm"))
    assert cfg["_target_"] == "hydra_plugins.gol_launcher.launcher.PreemptibleSlurmLauncher"
    assert (cfg["nodes"], cfg["tasks_per_node"], cfg["gpus_per_node"]) == (1, 4, 4)
    assert cfg["partition"] is None and cfg["account"] == "lab42"
    assert cfg["max_num_timeout"] >= 1
    assert cfg["setup"] == [f"export OMP_NUM_THREADS={cfg['cpus_per_task']}"]
    assert cfg["dry_run"] is False and cfg["num_train_images"] == {"lvis_v1": 100_170, "lvis_v05": 57_263}
    detectors = {"maskrcnn_r50_fpn", "maskrcnn_r101_fpn", "maskrcnn_x101_fpn", "cascade_r101_fpn", "htc_r101_fpn"}
    assert detectors <= set(cfg["seconds_per_iter"])
    # Everything else is the plugin's schema: a typo in a preset fails at compose time.
    assert cfg["submitit_folder"].endswith("/.submitit/%j") and "array_parallelism" in cfg


def test_one_task_per_gpu(launcher_preset: Preset) -> None:
    cfg = resolved(launcher_preset("slurm", "hydra.launcher.gpus_per_node=8"))
    assert (cfg["gpus_per_node"], cfg["tasks_per_node"]) == (8, 8)


def test_misspelt_launcher_key_fails_at_compose(launcher_preset: Preset) -> None:
    with pytest.raises(Exception, match="dryrun"):
        launcher_preset("slurm", "hydra.launcher.dryrun=true")


def test_partition_from_environment_and_override(launcher_preset: Preset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOL_SLURM_PARTITION", "a100")
    assert resolved(launcher_preset("slurm"))["partition"] == "a100"
    assert resolved(launcher_preset("slurm", "hydra.launcher.partition=h100"))["partition"] == "h100"


def test_local_cluster_preset_is_small(launcher_preset: Preset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOL_SLURM_PARTITION", "a100")  # a real cluster's setting must not leak into tests
    cfg = resolved(launcher_preset("local_cluster"))
    assert cfg["_target_"].endswith("PreemptibleSlurmLauncher")
    assert (cfg["tasks_per_node"], cfg["gpus_per_node"], cfg["cpus_per_task"], cfg["partition"]) == (1, None, 1, None)
    assert cfg["max_num_timeout"] >= 1 and cfg["timeout_min"] <= 60
    assert cfg["setup"] == ["export OMP_NUM_THREADS=1"]  # one thread per single-CPU task


def test_local_preset(launcher_preset: Preset) -> None:
    cfg = resolved(launcher_preset("local"))
    assert cfg["_target_"] == "hydra_plugins.gol_launcher.launcher.PreemptibleLocalLauncher"
    assert "partition" not in cfg


def test_hydra_discovers_the_launchers() -> None:
    # Hydra's scan re-executes plugin modules, so compare classes by name.
    found = {f"{c.__module__}.{c.__qualname__}" for c in Plugins.instance().discover(Launcher)}
    ours = (PreemptibleSlurmLauncher, PreemptibleLocalLauncher)
    assert {f"hydra_plugins.gol_launcher.launcher.{c.__name__}" for c in ours} <= found
    assert PreemptibleSlurmLauncher._EXECUTOR == "slurm" and PreemptibleLocalLauncher._EXECUTOR == "local"


def test_checkpoint_resubmits_the_same_task() -> None:
    launcher = PreemptibleSlurmLauncher(submitit_folder="unused")
    args = (["x=1"], "hydra.sweep.dir", 3, "job_id_for_3", {})
    delayed = launcher.checkpoint(*args)
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.function is launcher and delayed.args == args


def test_hook_marks_an_active_wandb_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert wandb.run is None
    assert mark_wandb_preempting() is False
    run = wandb.init(mode="offline", dir=str(tmp_path), project="gol-launch-tests")
    try:
        assert mark_wandb_preempting() is True
    finally:
        run.finish()
    assert mark_wandb_preempting() is False


def test_local_launcher_runs_a_sweep(tmp_path: Path, toy_command: Callable[..., list[str]]) -> None:
    sweep = tmp_path / "sweep"
    done = subprocess.run(
        toy_command("hydra/launcher=local", "x=1,2", f"hydra.sweep.dir={sweep}"),
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted((sweep / str(i) / "done.txt").read_text() for i in (0, 1)) == ["1\n", "2\n"]
