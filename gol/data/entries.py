"""Entry-level checks of an LVIS-format annotation file: field types, unique ids, references, boxes, segmentations.

Shape shorthand: N = images, M = annotations, K = categories of the file.

Every problem found here is refused when the dataset is built, in one line that names the file and the first
offending entry (``annotation 17``, or ``annotations[5]`` when the entry has no usable id) and says how to fix it.
Each field is gathered once into a column and checked with numpy, so the checks cost a fraction of ``json.load`` on
a file of LVIS v1's size (1.27M annotations); only an error walks the column again to find the entry to name.

What is not refused here is handled as lvis-api and detectron2 handle it (see the data section of the README):
images without annotations are kept (dropped from training as detectron2's ``filter_empty``), categories without
images are kept, and boxes of zero area or outside the image are clipped and dropped from the training target.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gol.data.validation import FEDERATED_IMAGE_FIELDS, REQUIRED_CATEGORY_FIELDS, REQUIRED_KEYS, DataFormatError

_MISSING = object()  # stands for an absent field in a column
INT64_RANGE = (-(2**63), 2**63)
MIN_POLYGON_COORDS = 6  # three points (detectron2 and Detectron keep polygons of at least 6 numbers)

log = logging.getLogger(__name__)


def valid_polygons(polygons: list[Any]) -> list[Any]:
    """The polygons of at least 3 points with an even number of coordinates, as detectron2's loaders keep them
    (pycocotools would read a 4-number polygon as a box, and fails on shorter ones)."""
    return [p for p in polygons if len(p) >= MIN_POLYGON_COORDS and len(p) % 2 == 0]


FIX = "fix or remove that entry"
ENTRY_KIND = {"images": "image", "annotations": "annotation", "categories": "category"}
PLURAL = {kind: key for key, kind in ENTRY_KIND.items()}


@dataclass(frozen=True)
class Columns:
    """The id columns the dataset indexes with, gathered once by the checks."""

    image_ids: np.ndarray  # (N,) int64
    ann_image_ids: np.ndarray  # (M,) int64
    ann_category_ids: np.ndarray  # (M,) int64


def _name(kind: str, entries: Sequence[Any], position: int) -> str:
    """``annotation 17`` (by its id) or ``annotations[5]`` (by position, when the id itself is unusable)."""
    entry = entries[position]
    ident = entry.get("id") if isinstance(entry, dict) else None
    if type(ident) is int:
        return f"{kind} {ident}"
    return f"{PLURAL[kind]}[{position}]"


def _array(values: list[Any]) -> np.ndarray | None:
    """``values`` as a numpy array of the dtype numpy infers; None when they do not form one (ragged lists)."""
    try:
        return np.array(values)
    except (ValueError, TypeError):
        return None


def _is_int64(value: Any) -> bool:
    return type(value) is int and INT64_RANGE[0] <= value < INT64_RANGE[1]


def _show(value: Any) -> str:
    text = "missing" if value is _MISSING else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def require_objects(entries: list[Any], *, kind: str, source: Path) -> None:
    """Every element of the ``images`` / ``annotations`` / ``categories`` list is a JSON object."""
    bad = next((i for i, e in enumerate(entries) if type(e) is not dict), None)
    if bad is not None:
        raise DataFormatError(
            f"{source}: {PLURAL[kind]}[{bad}] is a JSON {type(entries[bad]).__name__}, expected an object; {FIX}"
        )


def int_column(entries: list[dict[str, Any]], field: str, *, kind: str, source: Path) -> np.ndarray:
    """(len(entries),) int64 of an integer field present in every entry."""
    values = [e.get(field, _MISSING) for e in entries]
    if not values:
        return np.zeros(0, dtype=np.int64)
    column = _array(values)
    if column is not None and column.dtype.kind == "i" and column.ndim == 1:
        return column.astype(np.int64)
    for i, v in enumerate(values):
        if v is _MISSING:
            raise DataFormatError(f"{source}: {_name(kind, entries, i)} lacks '{field}'; {FIX}")
        if not _is_int64(v):
            raise DataFormatError(
                f"{source}: {_name(kind, entries, i)} has {field} {_show(v)}, expected an integer; {FIX}"
            )
    raise AssertionError(f"{field}: no entry to blame")  # pragma: no cover  # the fast path takes every clean column


def require_unique(ids: np.ndarray, *, kind: str, source: Path) -> None:
    """Ids of one kind are unique (lvis-api indexes by id, so a repeated id loses or doubles an entry)."""
    values, counts = np.unique(ids, return_counts=True)
    if len(values) != len(ids):
        dup = int(values[np.argmax(counts > 1)])
        raise DataFormatError(
            f"{source}: {kind} id {dup} appears {int(counts.max())} times; {kind} ids must be unique, give each "
            f"{kind} its own id"
        )


def require_known(
    refs: np.ndarray, known: np.ndarray, *, field: str, among: str, entries: list[dict[str, Any]], source: Path
) -> None:
    """Every annotation's ``field`` names an entry of the file."""
    unknown = ~np.isin(refs, known)  # (M,)
    if unknown.any():
        i = int(np.argmax(unknown))
        raise DataFormatError(
            f"{source}: {_name('annotation', entries, i)} has {field} {int(refs[i])}, which is not among the file's "
            f"{among} ({int(unknown.sum())} annotation(s) like it); {FIX}"
        )


def check_images(images: list[dict[str, Any]], *, source: Path, federated: bool, category_ids: np.ndarray) -> None:
    """Sizes, file references and (val) the federated category lists of every image record."""
    for field in ("height", "width"):
        sizes = int_column(images, field, kind="image", source=source)
        if (sizes <= 0).any():
            i = int(np.argmax(sizes <= 0))
            raise DataFormatError(f"{source}: {_name('image', images, i)} has {field} {int(sizes[i])}; {FIX}")
    for i, img in enumerate(images):
        ref = img.get("coco_url", img.get("file_name"))
        if ref is None:
            raise DataFormatError(
                f"{source}: {_name('image', images, i)} has neither 'coco_url' (LVIS v1) nor 'file_name' (LVIS v0.5)"
            )
        if type(ref) is not str or not ref.strip("/"):
            raise DataFormatError(f"{source}: {_name('image', images, i)} names its file as {_show(ref)}; {FIX}")
        if "coco_url" in img and (type(img["coco_url"]) is not str or img["coco_url"].count("/") < 1):
            raise DataFormatError(
                f"{source}: {_name('image', images, i)} has coco_url {_show(img['coco_url'])}, expected "
                f".../<split folder>/<file name>; {FIX}"
            )
    if federated:
        _check_federated(images, source=source, category_ids=category_ids)


def _check_federated(images: list[dict[str, Any]], *, source: Path, category_ids: np.ndarray) -> None:
    for field in FEDERATED_IMAGE_FIELDS:
        lists = [img.get(field, _MISSING) for img in images]
        for i, ids in enumerate(lists):
            if ids is _MISSING:
                raise DataFormatError(
                    f"{source}: {_name('image', images, i)} lacks '{field}', which LVIS evaluation needs on every "
                    "val image"
                )
            if type(ids) is not list:
                raise DataFormatError(
                    f"{source}: {_name('image', images, i)} has {field} {_show(ids)}, expected a list of category "
                    f"ids; {FIX}"
                )
        flat = [c for ids in lists for c in ids]
        column = _array(flat) if flat else np.zeros(0, dtype=np.int64)
        if column is None or column.dtype.kind != "i":
            i = next(k for k, ids in enumerate(lists) if not all(_is_int64(v) for v in ids))
            raise DataFormatError(
                f"{source}: {_name('image', images, i)} has {field} {_show(lists[i])}, expected a list of category "
                f"ids; {FIX}"
            )
        unknown = ~np.isin(column, category_ids)  # (total length of the lists,)
        if unknown.any():
            owner = np.repeat(np.arange(len(lists)), [len(ids) for ids in lists])  # list of each element
            j = int(np.argmax(unknown))
            raise DataFormatError(
                f"{source}: {_name('image', images, int(owner[j]))} lists category {flat[j]} in {field}, which is not "
                f"among the file's categories; {FIX}"
            )


def check_boxes(annotations: list[dict[str, Any]], *, source: Path) -> None:
    """Every ``bbox`` is four finite numbers ``[x, y, width, height]`` with width, height >= 0.

    Zero-area boxes and boxes reaching outside the image are kept here: training clips them to the image and drops
    the empty ones (``gol.data.targets``), as detectron2 does; evaluation scores them as lvis-api does.
    """
    values = [a.get("bbox", _MISSING) for a in annotations]
    if not values:
        return
    boxes = _array(values)
    if boxes is not None and boxes.dtype.kind in "iuf" and boxes.shape == (len(values), 4):
        bad = ~np.isfinite(boxes).all(axis=1) | (boxes[:, 2] < 0) | (boxes[:, 3] < 0)  # (M,)
        if not bad.any():
            return
        i = int(np.argmax(bad))
        raise DataFormatError(
            f"{source}: {_name('annotation', annotations, i)} has bbox {_show(values[i])} with a negative or "
            f"non-finite size; LVIS boxes are [x, y, width, height], {FIX}"
        )
    for i, v in enumerate(values):
        if v is _MISSING:
            raise DataFormatError(f"{source}: {_name('annotation', annotations, i)} lacks 'bbox'; {FIX}")
        if type(v) is not list or len(v) != 4 or not all(type(x) in (int, float) for x in v):
            raise DataFormatError(
                f"{source}: {_name('annotation', annotations, i)} has bbox {_show(v)}, expected four numbers "
                f"[x, y, width, height]; {FIX}"
            )
    raise DataFormatError(f"{source}: the annotations' bboxes are not all [x, y, width, height] numbers; {FIX}")


def _segmentation_problem(seg: Any, size: tuple[int, int]) -> str | None:
    """What is wrong with one ``segmentation`` (polygons or RLE); None when nothing is."""
    if type(seg) is list:
        for part in seg:  # nesting only: the numbers themselves are checked when an image loads
            if type(part) is not list or (part and type(part[0]) in (list, dict)):
                return f"a polygon {_show(part)} that is not a list of coordinates"
        return None  # degenerate polygons are handled (gol.data.targets.valid_polygons), not refused
    if type(seg) is dict:
        counts, rle_size = seg.get("counts"), seg.get("size")
        if type(counts) not in (str, list) or type(rle_size) is not list:
            return "an RLE segmentation without 'counts' and 'size'"
        if tuple(rle_size) != size:
            return f"an RLE segmentation of size {rle_size}, but its image is {list(size)} (height, width)"
        return None
    return f"a segmentation {_show(seg)}, expected polygons (a list of lists) or RLE (a dict)"


def check_segmentations(
    annotations: list[dict[str, Any]], *, source: Path, size_of: dict[int, tuple[int, int]], evaluated: bool = False
) -> None:
    """Polygons (lists of coordinates) or RLE of the image's size. Polygons of fewer than 3 points or of an odd
    number of coordinates are dropped in training, as detectron2 drops them (an annotation left without a polygon
    leaves the training target); one warning counts them. In a file that is ``evaluated`` (val), an annotation
    without a valid polygon is refused: LVIS evaluation cannot rasterise it, and would fail after training.

    Coordinate values themselves are checked when an image is loaded (``LVISDetection.__getitem__``): reading every
    number of 1.27M polygons up front would cost more than the rest of the checks together.
    """
    degenerate: list[int] = []
    for i, a in enumerate(annotations):
        seg = a.get("segmentation", _MISSING)
        if seg is _MISSING:
            raise DataFormatError(f"{source}: {_name('annotation', annotations, i)} lacks 'segmentation'; {FIX}")
        problem = _segmentation_problem(seg, size_of[a["image_id"]])
        if problem is not None:
            raise DataFormatError(f"{source}: {_name('annotation', annotations, i)} has {problem}; {FIX}")
        if (type(seg) is list and len(valid_polygons(seg)) < len(seg)) or seg == []:
            degenerate.append(i)
    if degenerate and evaluated:
        empty = next((j for j in degenerate if not valid_polygons(annotations[j]["segmentation"])), None)
        if empty is not None:
            raise DataFormatError(
                f"{source}: {_name('annotation', annotations, empty)} has no polygon of 3 points or more "
                f"({_show(annotations[empty]['segmentation'])}), which LVIS evaluation needs; {FIX}"
            )
    if degenerate:
        left = sum(1 for i in degenerate if not valid_polygons(annotations[i]["segmentation"]))
        log.warning(
            "%s: %d annotation(s) have polygons of fewer than 3 points or an odd number of coordinates (e.g. %s): "
            "dropped in training as detectron2 drops them, and %d annotation(s) left without a polygon leave the "
            "training target; evaluation reads the file as lvis-api does",
            source, len(degenerate), _name("annotation", annotations, degenerate[0]), left,
        )  # fmt: skip


def check_areas(annotations: list[dict[str, Any]], *, source: Path) -> None:
    """Every annotation has a numeric ``area`` (LVIS evaluation sorts ground truth into area ranges by it)."""
    values = [a.get("area", _MISSING) for a in annotations]
    areas = _array(values)
    if not values or (areas is not None and areas.dtype.kind in "iuf" and areas.ndim == 1 and np.isfinite(areas).all()):
        return
    i = next((i for i, v in enumerate(values) if not (_is_int64(v) or (type(v) is float and math.isfinite(v)))), 0)
    raise DataFormatError(
        f"{source}: {_name('annotation', annotations, i)} has area {_show(values[i])}, expected a number "
        f"(LVIS evaluation needs it); {FIX}"
    )


def check_categories(categories: list[dict[str, Any]], *, source: Path) -> np.ndarray:
    """The LVIS fields of every category; returns the (K,) category ids."""
    if not categories:
        raise DataFormatError(f"{source} has no categories; an LVIS annotation file lists every category")
    for field in REQUIRED_CATEGORY_FIELDS:
        lacking = [c.get("id", "?") for c in categories if field not in c]
        if lacking:
            raise DataFormatError(
                f"{source}: {len(lacking)} categories lack '{field}' (e.g. id {lacking[0]}); LVIS-format category "
                f"entries need {list(REQUIRED_CATEGORY_FIELDS)} (a COCO file is not enough)"
            )
    ids = int_column(categories, "id", kind="category", source=source)
    require_unique(ids, kind="category", source=source)
    bad_freq = next((i for i, c in enumerate(categories) if c["frequency"] not in ("r", "c", "f")), None)
    if bad_freq is not None:
        raise DataFormatError(
            f"{source}: {_name('category', categories, bad_freq)} has frequency "
            f"{_show(categories[bad_freq]['frequency'])}, expected 'r', 'c' or 'f'"
        )
    int_column(categories, "image_count", kind="category", source=source)
    int_column([c for c in categories if "instance_count" in c], "instance_count", kind="category", source=source)
    return ids


def validate_lvis_dict(data: dict[str, Any], *, source: Path, federated: bool) -> Columns:
    """Check the LVIS v1/v0.5 fields the data layer and lvis-api rely on; returns the id columns.

    Args:
        data: the parsed annotation JSON.
        source: where it came from (for the message).
        federated: also require the per-image ``neg_category_ids`` / ``not_exhaustive_category_ids`` and the
            annotations' ``area`` that LVIS evaluation needs (validation splits).
    """
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise DataFormatError(
            f"{source} is not an LVIS/COCO annotation file: missing top-level {missing} "
            f"(expected {list(REQUIRED_KEYS)})"
        )
    for key in REQUIRED_KEYS:
        if not isinstance(data[key], list):
            raise DataFormatError(f"{source}: '{key}' is a {type(data[key]).__name__}, expected a list")
        require_objects(data[key], kind=ENTRY_KIND[key], source=source)
    images, anns = data["images"], data["annotations"]
    category_ids = check_categories(data["categories"], source=source)
    image_ids = int_column(images, "id", kind="image", source=source)
    require_unique(image_ids, kind="image", source=source)
    check_images(images, source=source, federated=federated, category_ids=category_ids)

    ann_ids = int_column(anns, "id", kind="annotation", source=source)
    require_unique(ann_ids, kind="annotation", source=source)
    ann_image_ids = int_column(anns, "image_id", kind="annotation", source=source)
    require_known(ann_image_ids, image_ids, field="image_id", among="images", entries=anns, source=source)
    ann_category_ids = int_column(anns, "category_id", kind="annotation", source=source)
    require_known(ann_category_ids, category_ids, field="category_id", among="categories", entries=anns, source=source)
    check_boxes(anns, source=source)
    size_of = {int(i["id"]): (int(i["height"]), int(i["width"])) for i in images}
    check_segmentations(anns, source=source, size_of=size_of, evaluated=federated)
    if federated:
        check_areas(anns, source=source)
    return Columns(image_ids=image_ids, ann_image_ids=ann_image_ids, ann_category_ids=ann_category_ids)
