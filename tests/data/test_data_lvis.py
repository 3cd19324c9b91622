"""LVIS v1 / v0.5 loading on tiny hand-written annotation files, and every bad input's one-line error."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from PIL import Image

from gol.data import DataFormatError, LVISDetection, build_lvis, collate, resolve_image_path
from gol.data.lvis_dataset import load_image

URL = "http://images.cocodataset.org"
SQUARE = [[1.0, 1.0, 4.0, 1.0, 4.0, 3.0, 1.0, 3.0]]


def _rle(height: int, width: int) -> dict[str, Any]:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[0:2, 5:8] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def _categories() -> list[dict[str, Any]]:
    # Non-contiguous ids: labels must follow ascending id order (5 -> 1, 9 -> 2, 12 -> 3).
    return [
        {"id": 12, "name": "kite", "frequency": "r", "image_count": 0, "instance_count": 0},
        {"id": 5, "name": "apple", "frequency": "r", "image_count": 2, "instance_count": 2},
        {"id": 9, "name": "bell", "frequency": "r", "image_count": 1, "instance_count": 2},
    ]


def _train(version: str) -> dict[str, Any]:
    images = [
        {"id": 1, "height": 6, "width": 10},
        {"id": 2, "height": 8, "width": 8},
        {"id": 3, "height": 5, "width": 5},
    ]
    for img in images:
        if version == "v1":
            img["coco_url"] = f"{URL}/train2017/{img['id']:012d}.png"
        else:
            img["file_name"] = f"COCO_train2014_{img['id']:012d}.png"
    anns = [
        {"id": 1, "image_id": 1, "category_id": 9, "bbox": [1, 1, 3, 2], "area": 6, "segmentation": SQUARE},
        {"id": 2, "image_id": 1, "category_id": 5, "bbox": [5, 0, 3, 2], "area": 6, "segmentation": _rle(6, 10)},
        {"id": 3, "image_id": 2, "category_id": 5, "bbox": [2, 2, 0, 3], "area": 0, "segmentation": SQUARE},
        {"id": 4, "image_id": 1, "category_id": 9, "bbox": [1, 1, 3, 2], "area": 6, "segmentation": SQUARE},
    ]
    return {"images": images, "annotations": anns, "categories": _categories()}


def _val(version: str) -> dict[str, Any]:
    # LVIS v1 val images live in both COCO folders; v0.5 val images in val2017.
    images = [
        {"id": 10, "height": 6, "width": 10, "neg_category_ids": [12], "not_exhaustive_category_ids": [5]},
        {"id": 11, "height": 7, "width": 9, "neg_category_ids": [], "not_exhaustive_category_ids": []},
    ]
    for img, folder in zip(images, ("val2017", "train2017")):
        if version == "v1":
            img["coco_url"] = f"{URL}/{folder}/{img['id']:012d}.png"
        else:
            img["file_name"] = f"COCO_val2014_{img['id']:012d}.png"
    anns = [{"id": 7, "image_id": 10, "category_id": 5, "bbox": [1, 1, 3, 2], "area": 6, "segmentation": SQUARE}]
    return {"images": images, "annotations": anns, "categories": _categories()}


def _write_images(root: Path, data: dict[str, Any], folder_of: dict[int, str]) -> None:
    for img in data["images"]:
        folder = root / folder_of[img["id"]]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.full((img["height"], img["width"], 3), img["id"] * 10, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{img['id']:012d}.png")


def make_lvis(tmp_path: Path, version: str) -> tuple[Path, Path, Path]:
    """(train_ann, val_ann, coco_root) of a tiny LVIS dataset with images on disk."""
    train, val = _train(version), _val(version)
    root = tmp_path / "coco"
    val_folders = {10: "val2017", 11: "train2017" if version == "v1" else "val2017"}
    _write_images(root, train, {1: "train2017", 2: "train2017", 3: "train2017"})
    _write_images(root, val, val_folders)
    (tmp_path / "train.json").write_text(json.dumps(train))
    (tmp_path / "val.json").write_text(json.dumps(val))
    return tmp_path / "train.json", tmp_path / "val.json", root


def _build(train: Path, val: Path, root: Path, version: str = "v1", **over: Any):
    kwargs = dict(
        version=version,
        train_ann=str(train),
        val_ann=str(val),
        image_root=str(root),
        train_sizes=[8, 10],
        test_size=10,
        max_size=20,
        flip_prob=0.0,
        cache_dir=str(Path(train).parent / "cache"),
    )
    kwargs.update(over)
    return build_lvis(**kwargs)


@pytest.mark.parametrize("version", ["v1", "v0.5"])
def test_load_both_versions(tmp_path: Path, version: str) -> None:
    source = _build(*make_lvis(tmp_path, version), version=version)
    assert len(source.train) == 2  # image 3 has no annotations and is dropped from training
    assert len(source.val) == 2  # val keeps every image
    assert source.stats.category_ids == (5, 9, 12) and source.stats.names == ("apple", "bell", "kite")
    assert source.stats.image_count.tolist() == [2, 1, 0]
    assert source.stats.instance_count.tolist() == [2, 2, 0]
    assert source.stats.num_images == 2
    assert source.train_sizes == (8, 10) and source.test_size == 10 and source.max_size == 20
    assert source.val_annotation_file == tmp_path / "val.json"

    image, target = source.train[0]
    assert image.shape == (3, 6, 10) and image.dtype == torch.uint8  # converted on the model's device
    assert torch.equal(image, torch.full_like(image, 10))
    assert target["image_id"] == 1
    assert torch.equal(target["labels"], torch.tensor([2, 1, 2]))  # bell, apple, bell
    assert torch.equal(target["boxes"][1], torch.tensor([5.0, 0.0, 8.0, 2.0]))
    assert target["masks"].shape == (3, 6, 10) and int(target["masks"][1].sum()) == 6

    _, empty = source.train[1]  # image 2: its only box is degenerate (w = 0)
    assert empty["boxes"].shape == (0, 4) and empty["masks"].shape == (0, 8, 8)

    images, targets = collate([source.val[0], source.val[1]])
    assert [t["image_id"] for t in targets] == [10, 11] and images[1].shape == (3, 7, 9)
    assert source.train.get_height_and_width(1) == (8, 8)


def test_coco_url_resolution_to_both_folders(tmp_path: Path) -> None:
    rec_val = {"id": 1, "coco_url": f"{URL}/val2017/000000000001.jpg"}
    rec_train = {"id": 2, "coco_url": f"{URL}/train2017/000000000002.jpg"}

    def resolve(rec: dict[str, Any]) -> Path:
        return resolve_image_path(rec, image_root=tmp_path, split_folder="val2017", version="v1")

    assert resolve(rec_val) == tmp_path / "val2017/000000000001.jpg"
    assert resolve(rec_train) == tmp_path / "train2017/000000000002.jpg"  # the split folder does not matter


def test_v05_file_name_resolution(tmp_path: Path) -> None:
    def resolve(rec: dict[str, Any], folder: str, version: str) -> Path:
        return resolve_image_path(
            rec,
            image_root=tmp_path,
            split_folder=folder,
            version=version,  # type: ignore[arg-type]
        )

    rec = {"id": 3, "file_name": "COCO_val2014_000000000003.jpg", "coco_url": f"{URL}/val2017/000000000003.jpg"}
    assert resolve(rec, "val2017", "v0.5") == tmp_path / "val2017/000000000003.jpg"  # 2014 name -> 2017 name
    plain = {"id": 4, "file_name": "000000000004.jpg"}
    assert resolve(plain, "train2017", "v0.5") == tmp_path / "train2017/000000000004.jpg"
    # A v1 loader given a record with only file_name falls back to the split folder.
    assert resolve(plain, "train2017", "v1") == tmp_path / "train2017/000000000004.jpg"


def test_flip_applies_to_training_only(tmp_path: Path) -> None:
    source = _build(*make_lvis(tmp_path, "v1"), flip_prob=1.0)
    _, flipped = source.train[0]
    assert torch.equal(flipped["boxes"][1], torch.tensor([2.0, 0.0, 5.0, 2.0]))  # x -> 10 - x
    _, val_target = source.val[0]
    assert torch.equal(val_target["boxes"][0], torch.tensor([1.0, 1.0, 4.0, 3.0]))


def test_json_counts_mismatch_is_logged_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    train, val, root = make_lvis(tmp_path, "v1")
    data = json.loads(train.read_text())
    data["categories"][1]["image_count"] = 99
    train.write_text(json.dumps(data))
    source = _build(train, val, root)
    assert source.stats.image_count.tolist() == [2, 1, 0]  # counted from the annotations
    assert "image_count/instance_count different" in caplog.text


def test_load_image_grey_to_rgb(tmp_path: Path) -> None:
    Image.fromarray(np.full((3, 4), 255, dtype=np.uint8), mode="L").save(tmp_path / "g.png")
    image = load_image(tmp_path / "g.png")
    assert image.shape == (3, 3, 4) and image.dtype == torch.uint8 and int(image.min()) == 255


# ----------------------------------------------------------------------------------------------- bad inputs


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message
    return message


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_missing_annotation_file(tmp_path: Path) -> None:
    _train, val, root = make_lvis(tmp_path, "v1")
    with pytest.raises(FileNotFoundError) as err:
        _build(tmp_path / "nope.json", val, root)
    assert "annotation file not found" in _one_line(err) and "nope.json" in str(err.value)


def test_missing_image_root(tmp_path: Path) -> None:
    train, val, _ = make_lvis(tmp_path, "v1")
    with pytest.raises(FileNotFoundError) as err:
        _build(train, val, tmp_path / "no_coco")
    assert "image root not found" in _one_line(err) and "coco_root" in str(err.value)


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"foo": 1}, "missing top-level"),
        ([1, 2], "expected an LVIS/COCO object"),
        ({"images": [], "annotations": [], "categories": {}}, "'categories' is a dict"),
    ],
)
def test_not_lvis_json(tmp_path: Path, body: Any, needle: str) -> None:
    train, val, root = make_lvis(tmp_path, "v1")
    train.write_text(json.dumps(body))
    with pytest.raises(DataFormatError) as err:
        _build(train, val, root)
    assert needle in _one_line(err)


def test_invalid_json(tmp_path: Path) -> None:
    train, val, root = make_lvis(tmp_path, "v1")
    train.write_text("{not json")
    with pytest.raises(DataFormatError) as err:
        _build(train, val, root)
    assert "not valid JSON" in _one_line(err)


@pytest.mark.parametrize("field", ["frequency", "image_count"])
def test_categories_lacking_lvis_fields(tmp_path: Path, field: str) -> None:
    train, val, root = make_lvis(tmp_path, "v1")
    _edit(train, lambda d: d["categories"][0].pop(field))
    with pytest.raises(DataFormatError) as err:
        _build(train, val, root)
    message = _one_line(err)
    assert f"lack '{field}'" in message and "LVIS-format category entries need" in message


def test_missing_image_file_checked_up_front(tmp_path: Path) -> None:
    train, val, root = make_lvis(tmp_path, "v1")
    (root / "train2017" / "000000000002.png").unlink()
    with pytest.raises(FileNotFoundError) as err:
        _build(train, val, root)
    assert "000000000002.png" in _one_line(err) and "train2017" in str(err.value)


def test_val_without_federated_fields(tmp_path: Path) -> None:
    train, val, root = make_lvis(tmp_path, "v1")
    _edit(val, lambda d: d["images"][1].pop("neg_category_ids"))
    with pytest.raises(DataFormatError) as err:
        _build(train, val, root)
    assert "neg_category_ids" in _one_line(err)


def test_train_and_val_categories_differ(tmp_path: Path) -> None:
    train, val, root = make_lvis(tmp_path, "v1")
    _edit(val, lambda d: d["categories"].pop(2))  # bell (9): no val entry refers to it
    with pytest.raises(DataFormatError) as err:
        _build(train, val, root)
    assert "different categories" in _one_line(err)


def test_image_without_file_reference(tmp_path: Path) -> None:
    train, val, root = make_lvis(tmp_path, "v1")
    _edit(train, lambda d: d["images"][0].pop("coco_url"))
    with pytest.raises(DataFormatError) as err:
        _build(train, val, root)
    assert "neither 'coco_url'" in _one_line(err)


def test_unknown_category_in_annotations(tmp_path: Path) -> None:
    train, val, root = make_lvis(tmp_path, "v1")
    _edit(train, lambda d: d["annotations"][0].update(category_id=77))
    with pytest.raises(DataFormatError) as err:
        _build(train, val, root)
    assert "annotation 1 has category_id 77, which is not among the file's categories" in _one_line(err)


def test_image_size_mismatch_at_load(tmp_path: Path) -> None:
    train, val, root = make_lvis(tmp_path, "v1")
    _edit(train, lambda d: d["images"][1].update(height=9))
    source = _build(train, val, root)
    with pytest.raises(DataFormatError) as err:
        source.train[1]
    message = _one_line(err)
    assert "000000000002.png) is 8x8 but its record in" in message and "train.json says 9x8" in message


@pytest.mark.parametrize(
    "over, needle",
    [
        ({"version": "v2"}, "unknown LVIS version"),
        ({"train_sizes": []}, "train_sizes"),
        ({"test_size": 0}, "test_size"),
        ({"max_size": 5}, "max_size"),
        ({"flip_prob": 2.0}, "flip_prob"),
    ],
)
def test_bad_settings(tmp_path: Path, over: dict[str, Any], needle: str) -> None:
    with pytest.raises(DataFormatError) as err:
        _build(tmp_path / "a.json", tmp_path / "b.json", tmp_path, **over)  # rejected before any file is read
    assert needle in _one_line(err)


def test_dataset_direct_construction_keeps_json_order(tmp_path: Path) -> None:
    train, _, root = make_lvis(tmp_path, "v1")
    ds = LVISDetection(
        annotation_file=train,
        image_root=root,
        version="v1",
        split_folder="train2017",
        transforms=None,
        drop_unannotated=False,
        federated=False,
    )
    assert ds.image_ids == [1, 2, 3] and ds.num_classes == 3
    image_index, labels = ds.occurrences()
    # Grouped by image, file order within an image (the annotation file lists image 1, 1, 2, 1).
    assert image_index.tolist() == [0, 0, 0, 1] and labels.tolist() == [2, 1, 2, 1]
    assert copy.deepcopy(ds.label_of) == {5: 1, 9: 2, 12: 3}
