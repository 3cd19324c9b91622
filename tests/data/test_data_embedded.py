"""The embedded generated dataset: determinism, cache, long tail, exact masks, federated val fields."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from PIL import Image

from gol.data.embedded import TRAIN_JSON, VAL_JSON, EmbeddedParams, ensure_embedded, generate
from gol.data.embedded_layout import frequency_of
from gol.data.embedded_render import COLOURS, SHADE, category_looks

SMALL = dict(
    num_shapes=2,
    num_colours=2,
    num_textures=2,
    num_train=150,
    num_val=30,
    max_images_per_category=120,
    min_images_per_category=3,
    image_size=64,
)
SATURATION = 30  # background saturation is < 10, object colours (and their dark shades) > 45


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_byte_identical_and_other_seed_differs(tmp_path: Path) -> None:
    a = ensure_embedded(tmp_path / "a", EmbeddedParams(seed=3, **SMALL))
    b = ensure_embedded(tmp_path / "b", EmbeddedParams(seed=3, **SMALL))
    c = ensure_embedded(tmp_path / "c", EmbeddedParams(seed=4, **SMALL))
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert fa.keys() == fb.keys() and all(fa[k] == fb[k] for k in fa)
    assert fa[TRAIN_JSON] != fc[TRAIN_JSON]
    assert sum(fa[k] != fc.get(k) for k in fa if k.endswith(".png")) > 0
    assert a.name != c.name  # the seed is part of the cache key


def test_cache_reused_and_keyed_by_parameters(tmp_path: Path) -> None:
    params = EmbeddedParams(seed=0, **SMALL)
    first = ensure_embedded(tmp_path, params)
    stamp = (first / TRAIN_JSON).stat().st_mtime_ns
    (first / "marker").write_text("kept")
    again = ensure_embedded(tmp_path, params)
    assert again == first and (again / "marker").exists() and (again / TRAIN_JSON).stat().st_mtime_ns == stamp
    other = ensure_embedded(tmp_path, EmbeddedParams(seed=0, **{**SMALL, "num_val": 31}))
    assert other != first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]  # no temporary folder left behind


def test_concurrent_writer_loses_rename_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process finishes the same dataset while ours is generating: ours must use theirs and clean up."""
    import gol.data.embedded as embedded

    params = EmbeddedParams(seed=0, **SMALL)
    winner = tmp_path / params.key()

    def generate_and_lose_the_race(p: EmbeddedParams, out_dir: Path) -> None:
        generate(p, out_dir)
        winner.mkdir()
        generate(p, winner)  # the other writer's complete copy lands first
        (winner / "theirs").write_text("")

    monkeypatch.setattr(embedded, "generate", generate_and_lose_the_race)
    assert ensure_embedded(tmp_path, params) == winner
    assert (winner / "theirs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [params.key()]  # our temporary copy is gone


def test_concurrent_processes_share_one_dataset(tmp_path: Path) -> None:
    import multiprocessing as mp

    params = EmbeddedParams(seed=2, **SMALL)
    with mp.get_context("fork").Pool(2) as pool:
        folders = pool.starmap(ensure_embedded, [(tmp_path, params), (tmp_path, params)])
    assert folders[0] == folders[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [params.key()]
    assert (folders[0] / VAL_JSON).is_file()


@pytest.fixture(scope="module")
def default_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset the demo trains on (default parameters)."""
    return ensure_embedded(tmp_path_factory.mktemp("embedded"), EmbeddedParams())


def _load(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


def test_default_sizes_and_long_tail(default_dataset: Path) -> None:
    train = _load(default_dataset, TRAIN_JSON)
    val = _load(default_dataset, VAL_JSON)
    assert len(train["images"]) == 1200 and len(val["images"]) == 250 and len(train["categories"]) == 60
    groups = [c["frequency"] for c in train["categories"]]
    assert {g: groups.count(g) > 0 for g in "rcf"} == {"r": True, "c": True, "f": True}
    assert val["categories"] == train["categories"]  # as in LVIS: val carries the training counts
    per_image = {}
    for a in train["annotations"]:
        per_image.setdefault(a["image_id"], []).append(a)
    assert len(per_image) == 1200 and {len(v) for v in per_image.values()} <= {1, 2, 3, 4}


@pytest.mark.parametrize("params", [EmbeddedParams(), EmbeddedParams(seed=1, **SMALL)], ids=["default", "small"])
def test_category_fields_match_annotations(params: EmbeddedParams, tmp_path: Path, default_dataset: Path) -> None:
    folder = default_dataset if params == EmbeddedParams() else ensure_embedded(tmp_path, params)
    train = _load(folder, TRAIN_JSON)
    images: dict[int, set[int]] = {}
    instances: dict[int, int] = {}
    for a in train["annotations"]:
        images.setdefault(a["category_id"], set()).add(a["image_id"])
        instances[a["category_id"]] = instances.get(a["category_id"], 0) + 1
    for c in train["categories"]:
        assert c["image_count"] == len(images.get(c["id"], ()))
        assert c["instance_count"] == instances.get(c["id"], 0)
        assert c["frequency"] == frequency_of(c["image_count"])
    assert any(c["instance_count"] > c["image_count"] for c in train["categories"])  # some repeated instances
    assert {c["frequency"] for c in train["categories"]} == {"r", "c", "f"}


def _check_masks(folder: Path, split: dict, limit: int) -> int:
    """Masks equal their polygons' pixels in the image; returns the number of images with unannotated objects."""
    looks = category_looks(5, 4, 3)
    by_image: dict[int, list[dict]] = {}
    for a in split["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    partial = 0
    for img in split["images"][:limit]:
        folder_name, file_name = img["coco_url"].split("/")[-2:]
        pixels = np.asarray(Image.open(folder / folder_name / file_name).convert("RGB")).astype(np.int64)
        assert pixels.shape[:2] == (img["height"], img["width"])
        objects = (pixels.max(axis=2) - pixels.min(axis=2)) > SATURATION  # (H, W)
        union = np.zeros(objects.shape, dtype=np.int64)
        for a in by_image.get(img["id"], []):
            rle = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], img["height"], img["width"]))
            mask = mask_utils.decode(rle).astype(bool)
            union += mask
            look = looks[a["category_id"] - 1]
            base = np.array(COLOURS[look.colour])
            colours = {tuple(c) for c in pixels[mask].tolist()}
            assert colours <= {tuple(base), tuple((base * SHADE).astype(np.uint8))}, "mask pixel outside its object"
            assert a["bbox"] == [float(v) for v in mask_utils.toBbox(rle)] and a["area"] == float(mask.sum())
        assert union.max() <= 1, "objects overlap"
        assert not (union.astype(bool) & ~objects).any()
        if img["not_exhaustive_category_ids"]:
            partial += 1
            assert (objects & ~union.astype(bool)).any()  # the deliberately unannotated instance
        else:
            assert np.array_equal(objects, union.astype(bool)), "an object pixel is outside every mask"
    return partial


def test_masks_exactly_match_polygons(default_dataset: Path) -> None:
    _check_masks(default_dataset, _load(default_dataset, TRAIN_JSON), limit=150)
    assert _check_masks(default_dataset, _load(default_dataset, VAL_JSON), limit=250) > 0


def test_val_federated_fields(default_dataset: Path) -> None:
    val = _load(default_dataset, VAL_JSON)
    category_ids = {c["id"] for c in val["categories"]}
    positives: dict[int, set[int]] = {}
    for a in val["annotations"]:
        positives.setdefault(a["image_id"], set()).add(a["category_id"])
    folders = set()
    n_neg = n_ne = 0
    for img in val["images"]:
        pos = positives.get(img["id"], set())
        neg, ne = set(img["neg_category_ids"]), set(img["not_exhaustive_category_ids"])
        assert neg <= category_ids and not (neg & pos), "a negative category is present"
        assert ne <= pos, "not-exhaustive categories are annotated categories"
        n_neg += bool(neg)
        n_ne += bool(ne)
        folders.add(img["coco_url"].split("/")[-2])
    assert n_neg > 200 and n_ne > 10
    assert folders == {"train2017", "val2017"}  # as LVIS v1 val, found through coco_url
    present = set().union(*positives.values())
    assert present == category_ids  # every category has val instances, so every APr/APc/APf term is defined


def test_bad_parameters_one_line() -> None:
    for kwargs, needle in (
        ({"num_shapes": 9}, "num_shapes"),
        ({"max_objects": 12}, "max_objects"),
        ({"seed": -1}, "seed"),
    ):
        with pytest.raises(ValueError) as err:
            EmbeddedParams(**kwargs)
        assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"max_images_per_category": 90}, "need rare, common and frequent"),
        ({"num_train": 100, "max_images_per_category": 100}, "need rare, common and frequent"),
        ({"num_train": 3000, "max_images_per_category": 150}, "cannot fill 3000 train images"),
        ({"num_val": 10}, "cannot fill 10 val images"),  # every category needs 2 val images
    ],
)
def test_unreachable_long_tail_one_line(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError) as err:
        EmbeddedParams(**kwargs)  # refused when the parameters are set, before any generation
    assert needle in str(err.value) and "\n" not in str(err.value)
