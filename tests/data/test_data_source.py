"""DataSource builders, the config group files, the DataLoader path and the ``gol-data`` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from gol.config import dataset as dataset_conf
from gol.config import paths as paths_conf
from gol.config import sampler as sampler_conf
from gol.data import DataSource, RandomSampler, RepeatFactorSampler, build_embedded, collate
from gol.data.cli import main as cli_main

CONF = Path(__file__).resolve().parents[2] / "conf"
SMALL = dict(
    seed=0,
    num_shapes=2,
    num_colours=2,
    num_textures=2,
    num_train=150,
    num_val=30,
    max_images_per_category=120,
    min_images_per_category=3,
    image_size=64,
    max_objects=4,
)
SIZES = dict(train_sizes=[56, 64, 72], test_size=64, max_size=128, flip_prob=0.5)


@pytest.fixture(scope="module")
def small_source(tmp_path_factory: pytest.TempPathFactory) -> DataSource:
    return build_embedded(root=str(tmp_path_factory.mktemp("emb")), **SMALL, **SIZES, cache_dir=None)


def test_embedded_source_contract(small_source: DataSource) -> None:
    s = small_source
    assert len(s.train) == 150 and len(s.val) == 30 and s.stats.num_classes == 8
    assert s.stats.num_images == 150 and s.train_sizes == (56, 64, 72) and s.test_size == 64 and s.max_size == 128
    assert set(s.stats.frequency) == {"r", "c", "f"}
    assert s.val_annotation_file.is_file()
    image, target = s.train[0]
    assert image.dtype == torch.uint8 and image.shape[0] == 3
    assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
    assert int(target["labels"].min()) >= 1 and int(target["labels"].max()) <= 8
    assert target["masks"].shape[1:] == image.shape[1:] and isinstance(target["image_id"], int)


def test_stats_match_json_fields(small_source: DataSource) -> None:
    categories = {c["id"]: c for c in json.loads(small_source.val_annotation_file.read_text())["categories"]}
    for k, cid in enumerate(small_source.stats.category_ids):
        assert int(small_source.stats.image_count[k]) == categories[cid]["image_count"]
        assert int(small_source.stats.instance_count[k]) == categories[cid]["instance_count"]
        assert small_source.stats.frequency[k] == categories[cid]["frequency"]


def test_dataloader_batches(small_source: DataSource) -> None:
    sampler = RandomSampler(dataset=small_source.train, seed=0)
    sampler.set_epoch(0)
    loader = DataLoader(small_source.train, batch_size=4, sampler=sampler, collate_fn=collate)
    images, targets = next(iter(loader))
    assert len(images) == 4 and len(targets) == 4 and all(im.dim() == 3 for im in images)


def test_rfs_oversamples_rare_images(small_source: DataSource) -> None:
    sampler = RepeatFactorSampler(dataset=small_source.train, seed=0, threshold=0.1, rounding="ceil")
    sampler.set_epoch(0)
    assert len(sampler) > len(small_source.train)
    assert sampler.repeat_factors.max() > 1.0 and sampler.repeat_factors.min() == 1.0


def _compose(tmp_path: Path, overrides: list[str]):
    store = ConfigStore.instance()
    for module in (dataset_conf, sampler_conf, paths_conf):
        for name, node in module.SCHEMAS.items():
            store.store(name=name, node=node)
    primary = tmp_path / "primary"
    primary.mkdir(exist_ok=True)
    (primary / "p.yaml").write_text(
        "defaults:\n  - dataset: embedded\n  - sampler: random\n  - paths: default\n  - _self_\nseed: 0\n"
    )
    for group in ("dataset", "sampler", "paths"):
        link = primary / group
        if not link.exists():
            link.symlink_to(CONF / group)
    with initialize_config_dir(config_dir=str(primary), version_base="1.3"):
        return compose("p", overrides=overrides)


@pytest.mark.parametrize("dataset", ["embedded", "lvis_v1", "lvis_v05"])
@pytest.mark.parametrize("sampler", ["random", "rfs", "rfs_ceil"])
def test_config_options_compose(tmp_path: Path, dataset: str, sampler: str) -> None:
    cfg = _compose(tmp_path, [f"dataset={dataset}", f"sampler={sampler}", f"paths.root={tmp_path}"])
    assert cfg.dataset._target_.startswith("gol.data.build_")
    assert cfg.sampler._partial_ is True
    if dataset != "embedded":
        assert cfg.dataset.train_ann.startswith(str(tmp_path / "data" / "lvis"))
        assert cfg.dataset.image_root == str(tmp_path / "data" / "coco")
    if sampler.startswith("rfs"):
        assert cfg.sampler.threshold == 1e-3
        assert cfg.sampler.rounding == ("ceil" if sampler == "rfs_ceil" else "stochastic")


def test_config_typo_fails_at_compose(tmp_path: Path) -> None:
    with pytest.raises(ConfigCompositionException):
        _compose(tmp_path, ["dataset.num_trian=3", f"paths.root={tmp_path}"])


def test_config_instantiates_source_and_sampler(tmp_path: Path) -> None:
    overrides = [
        f"paths.root={tmp_path}",
        "sampler=rfs_ceil",
        "sampler.threshold=0.1",
        *[f"dataset.{k}={v}" for k, v in SMALL.items()],
    ]
    cfg = _compose(tmp_path, overrides)
    source = instantiate(cfg.dataset)
    assert isinstance(source, DataSource) and source.stats.num_classes == 8
    assert source.train.annotation_file.parent.parent == tmp_path / "data" / "embedded"
    factory = instantiate(cfg.sampler)
    sampler = factory(dataset=source.train, seed=cfg.seed)
    sampler.set_epoch(0)
    assert isinstance(sampler, RepeatFactorSampler) and sampler.rounding == "ceil" and len(sampler) > 150


def test_cli_embedded_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["embedded", "--out", str(tmp_path)]
    for k, v in SMALL.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    assert cli_main(args) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder.parent == tmp_path and (folder / "lvis_v1_train.json").is_file()
    assert cli_main(["stats", str(folder / "lvis_v1_train.json")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["categories"] == 8 and summary["json_count_disagreements"] == 0
    assert all(summary["groups"][g] > 0 for g in "rcf")


def test_cli_bad_input_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["embedded", "--out", str(tmp_path), "--num-shapes", "9"]) == 2
    assert cli_main(["stats", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert "num_shapes must lie in 1..6" in err and "annotation file not found" in err
