"""The LVIS-sized generator at small scale: files the data layer accepts, counts that agree, LVIS's layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gol.data import build_lvis
from gol.data.category_stats import compare_with_json_counts
from gol.data.cli import main as cli_main
from gol.data.entries import validate_lvis_dict
from gol.data.lvis_scale import HEIGHT, WIDTH, write_json_stream, write_lvis_scale
from gol.data.lvis_scale_geometry import draw_polygons
from gol.data.lvis_scale_plan import (
    COMMON_MAX,
    RARE_MAX,
    VERSION_SIZES,
    draw_pairs,
    full_image_counts,
    scaled,
)

SIZES = {"train_sizes": [480], "test_size": 480, "max_size": 800, "flip_prob": 0.5}


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lvis_scale")
    write_lvis_scale(out, version="v1", scale=0.01, seed=0)
    return out


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_v1_at_small_scale_has_lvis_v1_shape(v1: Path) -> None:
    train, val = _load(v1 / "lvis_v1_train.json"), _load(v1 / "lvis_v1_val.json")
    size = VERSION_SIZES["v1"]
    assert len(train["images"]) == scaled(size.train.images, 0.01) == 1002
    assert len(train["annotations"]) == scaled(size.train.annotations, 0.01)
    assert len(val["images"]) == scaled(size.val.images, 0.01)
    assert train["categories"] == val["categories"]  # as in LVIS: both files carry the training counts
    groups = [c["frequency"] for c in train["categories"]]
    assert (groups.count("r"), groups.count("c"), groups.count("f")) == (337, 461, 405)
    assert {i["id"] for i in train["images"]}.isdisjoint(i["id"] for i in val["images"])
    # Polygons of LVIS-like complexity: 1-3 parts of 30-60 numbers each.
    parts = [len(a["segmentation"]) for a in train["annotations"]]
    numbers = [len(p) for a in train["annotations"] for p in a["segmentation"]]
    assert set(parts) == {1, 2, 3} and min(numbers) >= 30 and max(numbers) <= 60
    assert sum(i["neg_category_ids"] != [] for i in train["images"]) > 0.9 * len(train["images"])
    # v1 val images lie in both COCO folders, named by coco_url only.
    folders = {i["coco_url"].split("/")[-2] for i in val["images"]}
    assert folders == {"train2017", "val2017"} and not any("file_name" in i for i in val["images"])


def test_v1_files_pass_the_checks_and_counts_agree(v1: Path) -> None:
    train = _load(v1 / "lvis_v1_train.json")
    validate_lvis_dict(train, source=v1 / "lvis_v1_train.json", federated=False)
    validate_lvis_dict(_load(v1 / "lvis_v1_val.json"), source=v1 / "lvis_v1_val.json", federated=True)
    source = build_lvis(
        version="v1", train_ann=str(v1 / "lvis_v1_train.json"), val_ann=str(v1 / "lvis_v1_val.json"),
        image_root=str(v1 / "coco"), **SIZES, cache_dir=None,
    )  # fmt: skip
    assert compare_with_json_counts(source.stats, train["categories"], source="train") == 0
    annotated = {a["image_id"] for a in train["annotations"]}
    assert len(source.train) == len(annotated) < len(train["images"])  # some images without annotations, as LVIS
    for dataset in (source.train, source.val):
        image, target = dataset[len(dataset) // 2]
        assert image.shape == (3, HEIGHT, WIDTH) and target["masks"].shape[1:] == (HEIGHT, WIDTH)


def test_v05_spells_coco_2014_file_names(tmp_path: Path) -> None:
    files = write_lvis_scale(tmp_path, version="v0.5", scale=0.01, seed=1)
    train, val = _load(files.train_ann), _load(files.val_ann)
    assert files.train_ann.name == "lvis_v0.5_train.json" and len(train["categories"]) == 1230
    assert (len(train["images"]), len(val["images"])) == (573, 50)
    prefixes = {i["file_name"][:13] for i in train["images"]}
    assert prefixes == {"COCO_train201", "COCO_val2014_"}  # COCO train2017 holds train2014 and most of val2014
    assert {i["file_name"][:13] for i in val["images"]} == {"COCO_val2014_"}
    source = build_lvis(
        version="v0.5", train_ann=str(files.train_ann), val_ann=str(files.val_ann), image_root=str(files.image_root),
        **SIZES, cache_dir=None,
    )  # fmt: skip
    assert compare_with_json_counts(source.stats, train["categories"], source="train") == 0
    assert source.val[0][0].shape == (3, HEIGHT, WIDTH)


def test_same_seed_same_files_and_versions_share_one_image_root(tmp_path: Path) -> None:
    a = write_lvis_scale(tmp_path / "a", scale=0.002, seed=3)
    b = write_lvis_scale(tmp_path / "b", scale=0.002, seed=3)
    assert a.train_ann.read_bytes() == b.train_ann.read_bytes() and a.val_ann.read_bytes() == b.val_ann.read_bytes()
    c = write_lvis_scale(tmp_path / "a", version="v0.5", scale=0.002, seed=4)
    assert c.image_root == a.image_root and c.train_ann.read_bytes() != a.train_ann.read_bytes()
    linked = sorted(p.name for p in (a.image_root / "train2017").iterdir())
    assert len(linked) >= len(_load(a.train_ann)["images"])
    assert all((a.image_root / "train2017" / name).resolve() == (a.image_root / "lvis_scale_640x480.jpg").resolve()
               for name in linked[:5])  # fmt: skip


@pytest.mark.parametrize("version", sorted(VERSION_SIZES))
def test_full_scale_counts_follow_lvis_frequency_rule(version: str) -> None:
    counts, groups = full_image_counts(VERSION_SIZES[version], np.random.default_rng(0))
    expected = np.where(counts <= RARE_MAX, "r", np.where(counts <= COMMON_MAX, "c", "f"))
    assert (groups == expected).all()
    assert tuple(int((groups == g).sum()) for g in "rcf") == VERSION_SIZES[version].groups
    size = VERSION_SIZES[version].train
    assert counts.sum() == pytest.approx(3.4 * (size.images - size.unannotated), rel=0.01)


def test_pairs_are_distinct_and_hit_their_targets() -> None:
    rng = np.random.default_rng(0)
    target = np.array([1, 5, 30, 0, 200])
    image, category = draw_pairs(target, annotated=300, rng=rng, fill_with=np.array([4]))
    keys = image * 5 + category
    assert np.unique(keys).size == keys.size
    counts = np.bincount(category, minlength=5)
    assert counts[:4].tolist() == target[:4].tolist() and counts[4] >= 200  # images left empty join category 4
    assert set(image.tolist()) == set(range(300))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1), height=st.integers(16, 800), width=st.integers(16, 800))
def test_polygons_stay_in_the_image_and_inside_their_box(n: int, seed: int, height: int, width: int) -> None:
    shapes = draw_polygons(np.random.default_rng(seed), n, height=height, width=width)
    segms = shapes.segmentations()
    assert len(segms) == n and shapes.bbox.shape == (n, 4) and shapes.area.shape == (n,)
    for segm, (x, y, w, h), area in zip(segms, shapes.bbox.tolist(), shapes.area.tolist(), strict=True):
        xy = np.concatenate([np.reshape(p, (-1, 2)) for p in segm])  # (points, 2)
        assert 1 <= len(segm) <= 3 and all(30 <= len(p) <= 60 and len(p) % 2 == 0 for p in segm)
        assert (xy >= 0).all() and (xy[:, 0] <= width).all() and (xy[:, 1] <= height).all()
        assert xy[:, 0].min() == pytest.approx(x) and xy[:, 0].max() == pytest.approx(x + w, abs=0.011)
        assert xy[:, 1].min() == pytest.approx(y) and xy[:, 1].max() == pytest.approx(y + h, abs=0.011)
        assert 0 <= area <= len(segm) * (w * h) + 0.01


def test_json_stream_writes_one_object(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    write_json_stream(path, head={"info": {"a": 1}}, lists={"images": iter(['{"id":1}', "", '{"id":2}']),
                                                           "annotations": iter([])})  # fmt: skip
    assert json.loads(path.read_text()) == {"info": {"a": 1}, "images": [{"id": 1}, {"id": 2}], "annotations": []}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_cli_writes_and_refuses_bad_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["lvis-scale", "--out", str(tmp_path), "--scale", "0.002"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "lvis_v1_train.json"), str(tmp_path / "lvis_v1_val.json"), str(tmp_path / "coco")]
    assert cli_main(["lvis-scale", "--out", str(tmp_path), "--scale", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--scale must lie in (0, 10]" in err[0]
