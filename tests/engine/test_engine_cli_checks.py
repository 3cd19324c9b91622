"""`gol-train` as typed: the sweep folder resolves before Hydra's runtime exists, options and keys are checked in
one line before Hydra composes, and `--help` lists options, not schemas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from torchvision.models import resnet50

from gol.config import CONF_DIR, register_configs
from gol.config.choices import check_overrides, group_options
from gol.config.resolvers import register_resolvers
from tests_support import run_train

CONF = Path(CONF_DIR)
GOL_TRAIN = str(Path(sys.executable).with_name("gol-train"))  # the console script a user types


def test_sweep_and_run_folders_resolve_before_hydra_sets_its_runtime(tmp_path: Path, monkeypatch) -> None:
    """The basic sweeper reads hydra.sweep.dir before any job has set HydraConfig: paths.root must not need it."""
    register_configs()
    register_resolvers()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GOL_ROOT", raising=False)
    monkeypatch.delenv("GOL_OUTPUT", raising=False)
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose("train", overrides=["experiment=losses", "scale=smoke"], return_hydra_config=True)
    HydraConfig.instance().cfg = None  # as in the launching process of a multirun
    assert str(cfg.hydra.sweep.dir) == str(tmp_path / "outputs" / "sweeps" / "losses-smoke")
    assert str(cfg.paths.data_root) == str(tmp_path / "data")
    monkeypatch.setenv("GOL_ROOT", str(tmp_path / "root"))
    assert str(cfg.paths.output_root) == str(tmp_path / "root" / "outputs")


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["activation=gumbell"],
            "unknown activation option 'gumbell' (did you mean 'gumbel'?); choose one of: "
            "aglu, gumbel, probit, sigmoid, softmax",
        ),
        (["-m", "activation=sigmoid,softmx"], "unknown activation option 'softmx' (did you mean 'softmax'?)"),
        (["experiment=losess"], "unknown experiment option 'losess' (did you mean 'losses'?)"),
        (["activaton=gumbel"], "unknown key 'activaton' (did you mean 'activation'?)"),
        (["hydra/launcher=slurmm"], "unknown hydra/launcher option 'slurmm' (did you mean 'slurm'?)"),
        (["activation=gumbel_schema"], "unknown activation option 'gumbel_schema' (did you mean 'gumbel'?)"),
        (["recipe=gol", "--cfg", "job"], None),
        (["loss=gol"], "loss=gol is now recipe=gol (DropLoss with the Gumbel activation"),
        (["-m", "detector=glob(mask*)", "seed=range(0,3)", "schedule.lr=0.01", "hydra/launcher=basic"], None),
        (["experiment=null", "~tags", "+foo=1", "hydra.sweep.dir=x", "local=default"], None),
    ],
)
def test_check_overrides(argv: list[str], message: str | None) -> None:
    error = check_overrides(argv, CONF)
    assert error == message if message is None else error is not None and error.startswith(message), error


def test_group_options_are_the_yaml_files() -> None:
    groups = group_options(CONF)
    assert groups["activation"] == ["aglu", "gumbel", "probit", "sigmoid", "softmax"]
    assert "losses" in groups["experiment"]  # conf/experiment links to experiments/
    assert {"basic", "slurm", "local_cluster", "submitit_slurm"} <= set(groups["hydra/launcher"])


def test_a_misspelt_option_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    done = subprocess.run([GOL_TRAIN, "experiment=demo", "scale=smok"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("gol-train: error: unknown scale option 'smok' (did you mean 'smoke'?); "
                           "choose one of: full, smoke\n")  # fmt: skip
    assert not list(tmp_path.iterdir())


def test_help_lists_options_not_schemas(tmp_path: Path) -> None:
    done = subprocess.run([GOL_TRAIN, "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0
    groups = done.stdout.split("== Config ==")[0]
    assert "_schema" not in groups
    assert "activation: aglu, gumbel, probit, sigmoid, softmax" in groups
    assert "experiment: activations, beyond, demo, gol_ablation, losses, lvis_v05, schedule_sampler, sota" in groups
    assert "calibration: fracal, none" in groups
    hydra_help = subprocess.run([GOL_TRAIN, "--hydra-help"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert "hydra/launcher: basic, local, local_cluster, slurm, submitit_local, submitit_slurm" in hydra_help


def test_an_adhoc_sweep_typed_in_a_fresh_folder(tmp_path: Path, data_root: Path) -> None:
    """`gol-train -m ...` with no hydra.sweep.dir: a fresh outputs/multirun/<date>_<time>_<id>/ with both cells."""
    done = run_train(["-m", "activation=sigmoid,gumbel", "scale=smoke", "logger=none"], cwd=tmp_path,
                     env={"GOL_DATA": str(data_root)})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multirun").iterdir()
    assert sorted(p.parent.name for p in sweep.glob("*/record.json")) == [
        "activation=gumbel,detector=tiny",
        "activation=sigmoid,detector=tiny",
    ]


@pytest.mark.slow
def test_a_missing_imagenet_file_is_one_line_and_null_trains_from_scratch(tmp_path: Path, data_root: Path) -> None:
    """The R50 detector starts from resnet50-0676ba61.pth in GOL_WEIGHTS: without it, one line that names the file and
    where it comes from; with the file it trains (and gol-eval --run needs it no more); with the explicit
    detector.weights_backbone=null it trains from scratch, and the records say which."""
    small = [
        "dataset.num_shapes=3",
        "dataset.num_colours=2",
        "dataset.num_textures=2",
        "dataset.num_train=120",
        "dataset.num_val=16",
        "dataset.max_images_per_category=105",
    ]  # scale=smoke's data (and its cache)
    args = ["detector=maskrcnn_r50_fpn", "dataset=embedded", "schedule=smoke", "logger=none", *small]
    env = {"GOL_DATA": str(data_root)}
    refused = run_train(args, cwd=tmp_path, env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert "detector.weights_backbone: weights file not found:" in last
    assert "resnet50-0676ba61.pth (torchvision's ResNet50_Weights.IMAGENET1K_V1: https://download.pytorch.org" in last
    assert "GOL_WEIGHTS" in last and "detector.weights_backbone=null" in last
    assert not list((tmp_path / "outputs").glob("runs/*/checkpoints"))  # refused before anything was built

    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(resnet50(weights=None).state_dict(), weights / "resnet50-0676ba61.pth")  # an ImageNet-format file
    pretrained = run_train(args, cwd=tmp_path, env={**env, "GOL_WEIGHTS": str(weights)}, timeout=900)
    assert pretrained.returncode == 0, pretrained.stderr[-3000:]
    scratch = run_train([*args, "detector.weights_backbone=null"], cwd=tmp_path, env=env, timeout=900)
    assert scratch.returncode == 0, scratch.stderr[-3000:]

    runs = {json.loads((p / "record.json").read_text())["backbone_init"]: p
            for p in (tmp_path / "outputs" / "runs").iterdir() if (p / "metrics.json").is_file()}  # fmt: skip
    assert set(runs) == {"imagenet:resnet50-0676ba61.pth", "scratch"}
    (weights / "resnet50-0676ba61.pth").unlink()  # evaluating a checkpoint needs no weight file
    gol_eval = Path(sys.executable).with_name("gol-eval")
    run = runs["imagenet:resnet50-0676ba61.pth"]
    again = subprocess.run([str(gol_eval), "--run", str(run), "--out", str(tmp_path / "again.json")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads((run / "metrics.json").read_text())
