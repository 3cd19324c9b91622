"""Damaged LVIS-format annotation files and image files, fuzzed: every damage either loads exactly as lvis-api reads
the file, or is refused with a one-line DataFormatError naming the file and the entry. Never another exception."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gol.data import DataFormatError, LVISDetection, RandomSampler
from gol.data.cli import main as cli_main
from gol.data.lvis_dataset import ImageFileError
from gol.loader import StreamPosition, batches
from gol.lvis_compat import LVIS

URL = "http://images.cocodataset.org/train2017"
SIZES = {1: (6, 10), 2: (8, 8), 3: (5, 7), 4: (9, 6)}  # image id -> (height, width)
CATEGORY_IDS = (5, 9, 12)
Damage = Callable[[dict[str, Any]], tuple[str, ...]]  # edits the file; returns the entry names a refusal may give


def _poly(x: float, y: float) -> list[list[float]]:
    return [[x, y, x + 3, y, x + 3, y + 2, x, y + 2]]


def base() -> dict[str, Any]:
    """A small valid LVIS v1 file: 4 images (image 4 unannotated), 3 categories (12 without images), 5 annotations."""
    images = [
        {"id": i, "height": h, "width": w, "coco_url": f"{URL}/{i:012d}.png", "neg_category_ids": [12],
         "not_exhaustive_category_ids": []}
        for i, (h, w) in SIZES.items()
    ]  # fmt: skip
    anns = [
        {"id": 11, "image_id": 1, "category_id": 9, "bbox": [1, 1, 3, 2], "area": 6.0, "segmentation": _poly(1, 1)},
        {"id": 12, "image_id": 1, "category_id": 5, "bbox": [5, 0, 3, 2], "area": 6.0, "segmentation": _poly(5, 0)},
        {"id": 13, "image_id": 2, "category_id": 5, "bbox": [2, 2, 3, 2], "area": 6.0, "segmentation": _poly(2, 2)},
        {"id": 14, "image_id": 3, "category_id": 9, "bbox": [0, 1, 3, 2], "area": 6.0, "segmentation": _poly(0, 1)},
        {"id": 15, "image_id": 2, "category_id": 9, "bbox": [4, 4, 3, 2], "area": 6.0, "segmentation": _poly(4, 4)},
    ]
    cats = [{"id": c, "name": f"c{c}", "frequency": "r", "image_count": 0, "instance_count": 0} for c in CATEGORY_IDS]
    return {"images": images, "annotations": anns, "categories": cats}


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("coco")
    (root / "train2017").mkdir()
    for i, (h, w) in SIZES.items():
        pixels = np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "train2017" / f"{i:012d}.png")
    return root


def build(path: Path, root: Path, *, val: bool) -> LVISDetection:
    return LVISDetection(annotation_file=path, image_root=root, version="v1", split_folder="train2017",
                         transforms=None, drop_unannotated=not val, federated=val)  # fmt: skip


def assert_as_lvis_api(ds: LVISDetection, path: Path, *, val: bool) -> None:
    """The dataset holds what lvis-api reads from the file: its images (all for val, the annotated ones for
    training), its categories, and per image the boxes clipped to the image with empty ones dropped (detectron2)
    and lvis-api's own masks."""
    ref = LVIS(str(path))
    ids = [img["id"] for img in ref.dataset["images"] if val or ref.img_ann_map[img["id"]]]
    assert ds.image_ids == ids
    assert ds.category_ids == tuple(sorted(ref.cats))
    for index, image_id in enumerate(ids):
        image, target = ds[index]
        h, w = ref.imgs[image_id]["height"], ref.imgs[image_id]["width"]
        assert image.shape == (3, h, w)
        kept = []
        for ann in ref.img_ann_map[image_id]:
            x, y, bw, bh = ann["bbox"]
            box = [min(max(x, 0), w), min(max(y, 0), h), min(max(x + bw, 0), w), min(max(y + bh, 0), h)]
            # detectron2's loaders keep polygons of >= 6 numbers, an even count, and drop instances left without.
            seg = ann["segmentation"]
            if isinstance(seg, list):
                seg = [poly for poly in seg if len(poly) >= 6 and len(poly) % 2 == 0]
            if box[2] > box[0] and box[3] > box[1] and seg:
                kept.append((box, {**ann, "segmentation": seg}))
        assert target["boxes"].tolist() == [pytest.approx(b) for b, _ in kept]
        assert target["labels"].tolist() == [ds.category_ids.index(a["category_id"]) + 1 for _, a in kept]
        masks = [torch.from_numpy(ref.ann_to_mask(a)) for _, a in kept]
        assert torch.equal(target["masks"], torch.stack(masks) if masks else target["masks"].new_zeros(0, h, w))


def assert_refused(error: DataFormatError, path: Path, entries: tuple[str, ...]) -> None:
    message = str(error)
    assert message and "\n" not in message, message
    assert str(path) in message, message
    assert any(e in message for e in entries), (entries, message)


def check(data: dict[str, Any] | str, entries: tuple[str, ...], path: Path, root: Path, *, val: bool) -> None:
    """Either refused naming one of ``entries`` (while building, or loading an image), or loaded as lvis-api."""
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    try:
        ds = build(path, root, val=val)
        assert_as_lvis_api(ds, path, val=val)
    except DataFormatError as error:
        assert entries, f"a handled damage was refused: {error}"
        assert_refused(error, path, entries)
        return
    assert not entries, f"a damage expected to be refused loaded: {entries}"


# --------------------------------------------------------------------------------------------------- damages

KIND = {"images": "image", "annotations": "annotation", "categories": "category"}
FIELDS = {  # fields whose damage is refused (area and the federated lists: val only)
    "images": ("id", "height", "width", "coco_url"),
    "annotations": ("id", "image_id", "category_id", "bbox", "segmentation"),
    "categories": ("id", "frequency", "image_count"),
}
not_number = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.lists(st.integers(0, 9), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
not_int = st.one_of(not_number, st.floats(allow_nan=False).filter(lambda f: not f.is_integer()))
wrong_type = st.one_of(not_int, st.lists(st.lists(st.integers(0, 9), max_size=2), min_size=1, max_size=2))
# Not polygons nor RLE ([] and short polygons are not wrong types: they are handled, see "degenerate_polygon").
not_segmentation = st.one_of(st.none(), st.text(max_size=3), st.integers(), st.lists(st.integers(0, 9), min_size=1))
not_str = st.one_of(st.none(), st.integers(), st.lists(st.integers(0, 9), max_size=3))


def _names(key: str, index: int, entry: dict[str, Any]) -> tuple[str, ...]:
    return (f"{KIND[key]} {entry['id']}", f"{key}[{index}]")


@st.composite
def damages(draw: st.DrawFn) -> tuple[dict[str, Any] | str, tuple[str, ...], bool]:
    """(damaged file, entry names a refusal may give (empty: must load), whether it is a val split)."""
    data, val = base(), draw(st.booleans())
    kind = draw(st.sampled_from([
        "truncated", "wrong_type", "nested", "missing", "duplicate", "unknown_ref", "negative_box", "bad_image_size",
        "degenerate_polygon", "not_object", "coordinate", "rle_size", "federated", "area",
        "unannotated_image", "category_without_images", "zero_area_box", "outside_box", "cut_box",
    ]))  # fmt: skip
    key = draw(st.sampled_from(list(FIELDS)))
    index = draw(st.integers(0, len(data[key]) - 1))
    entry = data[key][index]
    ann_index = draw(st.integers(0, len(data["annotations"]) - 1))
    ann = data["annotations"][ann_index]
    ann_names = _names("annotations", ann_index, ann)
    if kind == "truncated":
        text = json.dumps(data)
        return text[: draw(st.integers(0, len(text) - 1))], ("is not valid JSON",), val
    if kind == "wrong_type":
        field = draw(st.sampled_from(FIELDS[key]))
        entry[field] = draw(
            not_str
            if field in ("coco_url", "frequency")
            else not_segmentation
            if field == "segmentation"
            else wrong_type
        )
        return data, _names(key, index, entry), val
    if kind == "nested":  # a number inside the box replaced, or the polygons nested one level too deep or too flat
        if draw(st.booleans()):
            ann["bbox"][draw(st.integers(0, 3))] = draw(not_number)
        else:
            ann["segmentation"] = draw(st.sampled_from([ann["segmentation"][0], [ann["segmentation"]], 7]))
        return data, ann_names, val
    if kind == "missing":
        field = draw(st.sampled_from(FIELDS[key]))
        del entry[field]
        return data, (*_names(key, index, entry), "lack") if field != "id" else (f"{key}[{index}]", "lack"), val
    if kind == "duplicate":
        other = data[key][(index + 1) % len(data[key])]
        entry["id"] = other["id"]
        return data, (f"{KIND[key]} id {other['id']} appears 2 times",), val
    if kind == "unknown_ref":
        field = draw(st.sampled_from(["image_id", "category_id"]))
        ann[field] = draw(st.sampled_from([0, 99, -3, 2**40]))
        return data, tuple(f"{name} has {field} {ann[field]}, which is not among" for name in ann_names), val
    if kind == "negative_box":
        ann["bbox"][draw(st.sampled_from([2, 3]))] = draw(st.floats(-1e6, -1e-3))
        return data, ann_names, val
    if kind == "bad_image_size":
        data["images"][index % 4][draw(st.sampled_from(["height", "width"]))] = draw(st.integers(-5, 0))
        return data, _names("images", index % 4, data["images"][index % 4]), val
    if kind == "degenerate_polygon":  # handled as detectron2: dropped, and an instance left without one too
        n = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 7, 9]))
        degenerate = [float(v) for v in range(n)]
        ann["segmentation"] = draw(st.sampled_from([[*ann["segmentation"], degenerate], [degenerate], []]))
        # A val annotation left without a polygon is refused: LVIS evaluation could not rasterise it.
        return data, ann_names if val and len(ann["segmentation"]) < 2 else (), val
    if kind == "not_object":
        data[key][index] = draw(st.one_of(st.integers(), st.text(max_size=3), st.none(), st.lists(st.integers())))
        return data, (f"{key}[{index}] is a JSON",), val
    if kind == "coordinate":  # checked when the image is loaded ("2" reads as a number, as in lvis-api)
        value = draw(st.sampled_from(["abc", [1], {}, None, float("inf"), 1e12, -40, "2"]))
        ann["segmentation"][0][draw(st.integers(0, 7))] = value
        # A list or dict first in a polygon reads as polygons nested too deep: refused when the dataset is built.
        return data, (f"image {ann['image_id']} cannot be rasterised", *ann_names) if value != "2" else (), val
    if kind == "rle_size":
        h, w = SIZES[ann["image_id"]]
        ann["segmentation"] = {"size": [h + 1, w], "counts": [0, (h + 1) * w]}
        return data, ann_names, val
    if kind == "federated":
        img = data["images"][index % 4]
        value = draw(st.one_of(not_int, st.just([77])))
        img[draw(st.sampled_from(["neg_category_ids", "not_exhaustive_category_ids"]))] = value
        valid = isinstance(value, list) and all(c in CATEGORY_IDS for c in value)
        return data, _names("images", index % 4, img) if val and not valid else (), val
    if kind == "area":
        ann["area"] = draw(st.one_of(st.none(), st.text(max_size=2), st.just(float("nan"))))
        return data, ann_names if val else (), val
    if kind == "unannotated_image":
        gone = draw(st.sampled_from([1, 2, 3]))
        data["annotations"] = [a for a in data["annotations"] if a["image_id"] != gone]
        return data, (), val
    if kind == "category_without_images":
        gone = draw(st.sampled_from([5, 9]))
        data["annotations"] = [a for a in data["annotations"] if a["category_id"] != gone]
        return data, (), val
    h, w = SIZES[ann["image_id"]]
    if kind == "zero_area_box":
        ann["bbox"][draw(st.sampled_from([2, 3]))] = 0
    elif kind == "outside_box":
        ann["bbox"] = [w + draw(st.integers(0, 5)), draw(st.integers(-3, h)), 2, 2]
    else:  # cut_box: reaching over the image's border, clipped
        ann["bbox"] = [draw(st.integers(-3, -1)), draw(st.integers(h - 2, h - 1)), 4, 4]
    return data, (), val


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=damages())
def test_every_damage_loads_as_lvis_api_or_is_refused_in_one_line(
    case: tuple[dict[str, Any] | str, tuple[str, ...], bool], image_root: Path, tmp_path: Path
) -> None:
    data, entries, val = case
    check(data, entries, tmp_path / "ann.json", image_root, val=val)


def test_the_undamaged_file_loads_as_lvis_api(image_root: Path, tmp_path: Path) -> None:
    for val in (False, True):
        check(base(), (), tmp_path / "ann.json", image_root, val=val)


# ------------------------------------------------------------------------------------------ one example per kind


def _refused(data: dict[str, Any], path: Path, root: Path, *, val: bool = False) -> str:
    path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError) as err:
        build(path, root, val=val)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    return str(err.value)


def _with(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    data = base()
    change(data)
    return data


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda d: d["annotations"][2].update(category_id=99),
         "annotation 13 has category_id 99, which is not among the file's categories"),
        (lambda d: d["annotations"][2].update(image_id=7), "annotation 13 has image_id 7, which is not among"),
        (lambda d: d["annotations"][1].update(id=11), "annotation id 11 appears 2 times"),
        (lambda d: d["images"][3].update(id=1), "image id 1 appears 2 times"),
        (lambda d: d["categories"][0].update(id=9), "category id 9 appears 2 times"),
        (lambda d: d["images"][0].update(height="6"), "image 1 has height '6', expected an integer"),
        (lambda d: d["images"][1].update(width=0), "image 2 has width 0"),
        (lambda d: d["annotations"][0].update(bbox=None), "annotation 11 has bbox None, expected four numbers"),
        (lambda d: d["annotations"][0].update(bbox=[[1, 1], [3, 2]]), "annotation 11 has bbox [[1, 1], [3, 2]]"),
        (lambda d: d["annotations"][0].update(bbox=[1, 1, -3, 2]), "annotation 11 has bbox [1, 1, -3, 2] with a neg"),
        (lambda d: d["annotations"][0].pop("segmentation"), "annotation 11 lacks 'segmentation'"),
        (lambda d: d["annotations"].__setitem__(4, "oops"), "annotations[4] is a JSON str, expected an object"),
        (lambda d: d["annotations"][4].update(id="15"), "annotations[4] has id '15', expected an integer"),
    ],
)  # fmt: skip
def test_refused_up_front_naming_the_entry(
    change: Callable[[dict[str, Any]], Any], needle: str, image_root: Path, tmp_path: Path
) -> None:
    assert needle in _refused(_with(change), tmp_path / "train.json", image_root)


def test_val_needs_a_polygon_per_annotation(image_root: Path, tmp_path: Path) -> None:
    no_polygon = _with(lambda d: d["annotations"][3].update(segmentation=[[1, 2, 3, 4]]))
    message = _refused(no_polygon, tmp_path / "val.json", image_root, val=True)
    assert "annotation 14 has no polygon of 3 points or more ([[1, 2, 3, 4]]), which LVIS evaluation needs" in message


def test_val_needs_areas_and_known_federated_categories(image_root: Path, tmp_path: Path) -> None:
    no_area = _with(lambda d: d["annotations"][3].pop("area"))
    assert "annotation 14 has area missing" in _refused(no_area, tmp_path / "val.json", image_root, val=True)
    neg = _with(lambda d: d["images"][2].update(neg_category_ids=[77]))
    message = _refused(neg, tmp_path / "val.json", image_root, val=True)
    assert "image 3 lists category 77 in neg_category_ids, which is not among the file's categories" in message


@pytest.mark.parametrize("val", [False, True])
def test_handled_as_lvis_api_and_detectron2(val: bool, image_root: Path, tmp_path: Path) -> None:
    """Images without annotations (kept for val, out of training), categories without images (kept), boxes of zero
    area or outside the image (clipped, empty ones out of the target), polygons of fewer than 3 points or an odd
    number of coordinates (dropped, and an instance left without one leaves the target, as in detectron2) load as
    lvis-api reads the file."""
    data = base()
    data["annotations"][0]["bbox"] = [1, 1, 0, 2]  # zero width
    data["annotations"][1]["bbox"] = [12, 0, 3, 2]  # right of the 10-wide image
    data["annotations"][4]["bbox"] = [-2, 6, 4, 4]  # over the corner: clipped to [0, 6, 2, 8]
    data["annotations"][4]["segmentation"].append([1, 2, 3, 4, 5, 6, 7])  # odd: dropped, the instance stays
    if not val:  # a val annotation left without a polygon is refused (test_val_needs_a_polygon_per_annotation)
        data["annotations"][2]["segmentation"] = [[1, 2, 3, 4]]  # no polygon left: the instance leaves the target
        data["annotations"][3]["segmentation"] = []  # the same
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    ds = build(path, image_root, val=val)
    assert ds.image_ids == ([1, 2, 3, 4] if val else [1, 2, 3]) and ds.category_ids == CATEGORY_IDS
    assert ds[0][1]["boxes"].shape == (0, 4)  # both boxes of image 1 dropped; the image stays
    assert ds[1][1]["boxes"].tolist() == ([[2, 2, 5, 4]] if val else []) + [[0, 6, 2, 8]]
    assert ds[2][1]["boxes"].shape == ((1, 4) if val else (0, 4))
    assert ds.category_stats().image_count.tolist() == [2, 3, 0]  # counted from the file, as LVIS's image_count
    assert_as_lvis_api(ds, path, val=val)


# ------------------------------------------------------------------------------------------------- image files


@pytest.fixture
def own_root(tmp_path: Path, image_root: Path) -> Path:
    """A copy of the image root that a test may damage."""
    root = tmp_path / "coco"
    (root / "train2017").mkdir(parents=True)
    for f in (image_root / "train2017").iterdir():
        (root / "train2017" / f.name).write_bytes(f.read_bytes())
    return root


def test_a_missing_image_file_is_refused_up_front(own_root: Path, tmp_path: Path) -> None:
    (own_root / "train2017" / "000000000003.png").unlink()
    path = tmp_path / "train.json"
    path.write_text(json.dumps(base()))
    with pytest.raises(FileNotFoundError) as err:
        build(path, own_root, val=False)
    message = str(err.value)
    assert "\n" not in message and "1 of 3 image files" in message and "000000000003.png" in message


def _jpeg_cut(path: Path) -> None:
    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")
    path.write_bytes(path.read_bytes()[:200])


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda p: p.write_bytes(b"\x00not an image" * 9), "cannot decode image file"),
        (lambda p: p.write_bytes(p.read_bytes()[:60]), "cannot decode image file"),  # a truncated PNG
        (_jpeg_cut, "cannot decode image file"),  # a truncated JPEG
        (lambda p: p.write_bytes(b""), "cannot decode image file"),
        (lambda p: p.unlink(), "image file not found"),
        (lambda p: Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(p, format="PNG"), "is 3x3 but its record"),
    ],
)
def test_a_damaged_image_fails_its_load_naming_the_path(
    damage: Callable[[Path], Any], needle: str, own_root: Path, tmp_path: Path
) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(base()))
    ds = build(path, own_root, val=False)
    image = own_root / "train2017" / "000000000002.png"
    damage(image)
    with pytest.raises((DataFormatError, FileNotFoundError)) as err:
        ds[1]
    message = str(err.value)
    assert "\n" not in message and needle in message and str(image) in message


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_loader_worker_fails_with_the_path_in_the_first_line(
    num_workers: int, own_root: Path, tmp_path: Path
) -> None:
    """The error of a sample loaded in a worker process reaches the training process as it was raised."""
    path = tmp_path / "train.json"
    path.write_text(json.dumps(base()))
    ds = build(path, own_root, val=False)
    image = own_root / "train2017" / "000000000003.png"
    image.write_bytes(b"garbage")
    stream = batches(ds, RandomSampler(dataset=ds, seed=0), batch_size=3, start=StreamPosition(), seed=0,
                     num_workers=num_workers)  # fmt: skip
    with pytest.raises(ImageFileError) as err:
        next(stream)
    assert str(err.value).splitlines()[0].startswith(f"cannot decode image file {image} (")
    assert "\n" not in str(err.value)


def test_gol_data_stats_refuses_a_damaged_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(_with(lambda d: d["annotations"][1].update(id=11))))
    assert cli_main(["stats", str(path)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "appears 2 times" in line]
    assert len(errors) == 1 and str(path) in errors[0]
