"""An LVIS-format annotation file as flat numpy columns: what a dataset reads per image, with no Python objects.

Shape shorthand: N = images (in file order), M = annotations (grouped by image; within an image in file order, as
lvis-api's ``img_ann_map``), P = polygons, C = polygon coordinates, B = bytes. A ragged column is a flat array
plus ``(len + 1,)`` int64 offsets: entry i is ``values[offsets[i]:offsets[i + 1]]``.

Held this way, a split of LVIS v1 train is a few dozen arrays that can be memory-mapped from one file set
(``gol.data.table_cache``): every process and loader worker of a node reads the same pages, and nothing is touched
by reference counts, where the parsed JSON (tens of millions of Python objects) is copied page by page into every
forked worker that reads it. lvis-api stays the reference for what a file means: the tests compare this view with
``lvis.LVIS`` of the same file (images, annotations, masks, negative and not-exhaustive category ids).

Segmentations keep what the file says: polygons as float64 coordinates (the numbers pycocotools rasterises), an RLE
as its compressed counts (an uncompressed RLE is compressed once here, which is what rasterising it does first).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from itertools import chain, pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from gol.data.entries import FIX
from gol.data.image_files import Version, image_file_parts
from gol.data.validation import DataFormatError

POLYGONS, RLE = 0, 1  # segmentation kinds


@dataclass(frozen=True, eq=False)
class AnnotationTable:
    """The columns of one annotation file (see the module docstring for the shapes and the ragged layout)."""

    image_ids: np.ndarray  # (N,) int64
    image_sizes: np.ndarray  # (N, 2) int64 height, width
    path_bytes: np.ndarray  # (B,) uint8: "folder/name" of every image under the image root, utf-8
    path_offsets: np.ndarray  # (N + 1,)
    neg_ids: np.ndarray  # neg_category_ids of every image, ragged over neg_offsets
    neg_offsets: np.ndarray  # (N + 1,)
    not_exhaustive_ids: np.ndarray  # not_exhaustive_category_ids, ragged over not_exhaustive_offsets
    not_exhaustive_offsets: np.ndarray  # (N + 1,)
    ann_offsets: np.ndarray  # (N + 1,) the annotations of image i
    ann_ids: np.ndarray  # (M,) int64
    ann_category_ids: np.ndarray  # (M,) int64
    boxes: np.ndarray  # (M, 4) float64 xywh, as in the file
    areas: np.ndarray  # (M,) float64, NaN where the file has no number
    seg_kinds: np.ndarray  # (M,) uint8: POLYGONS or RLE
    polygon_offsets: np.ndarray  # (M + 1,) the polygons of annotation j (none for an RLE)
    coord_offsets: np.ndarray  # (P + 1,) the coordinates of polygon p
    coords: np.ndarray  # (C,) float64 x, y, x, y, ...
    rle_offsets: np.ndarray  # (M + 1,) the RLE counts of annotation j (empty for polygons)
    rle_bytes: np.ndarray  # (B,) uint8 compressed RLE counts
    rle_sizes: np.ndarray  # (M, 2) int64 height, width of each RLE (0, 0 for polygons)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.names()}

    def __len__(self) -> int:
        return int(self.image_ids.shape[0])

    @property
    def num_annotations(self) -> int:
        return int(self.ann_ids.shape[0])

    def ann_image_index(self) -> np.ndarray:
        """(M,) the image (position in ``image_ids``) of every annotation."""
        return np.repeat(np.arange(len(self)), np.diff(self.ann_offsets))

    def image_path(self, index: int) -> str:
        """``folder/name`` of image ``index`` under the image root."""
        return _span(self.path_bytes, self.path_offsets, index).tobytes().decode()

    def neg_category_ids(self, index: int) -> list[int]:
        return _span(self.neg_ids, self.neg_offsets, index).tolist()

    def not_exhaustive_category_ids(self, index: int) -> list[int]:
        return _span(self.not_exhaustive_ids, self.not_exhaustive_offsets, index).tolist()

    def segmentation(self, j: int) -> list[list[float]] | dict[str, Any]:
        """Annotation ``j``'s segmentation as lvis-api reads it: polygons, or a compressed RLE (counts as bytes)."""
        if self.seg_kinds[j] == RLE:
            height, width = self.rle_sizes[j].tolist()
            return {"size": [height, width], "counts": _span(self.rle_bytes, self.rle_offsets, j).tobytes()}
        first, last = self.polygon_offsets[j], self.polygon_offsets[j + 1]
        bounds = self.coord_offsets[first : last + 1].tolist()
        return [self.coords[a:b].tolist() for a, b in pairwise(bounds)]

    def annotations(self, index: int) -> list[dict[str, Any]]:
        """Image ``index``'s annotations as dicts with lvis-api's fields (``id``, ``category_id``, ``bbox``,
        ``area``, ``segmentation``), in file order."""
        first, last = int(self.ann_offsets[index]), int(self.ann_offsets[index + 1])
        return [
            {
                "id": int(self.ann_ids[j]),
                "image_id": int(self.image_ids[index]),
                "category_id": int(self.ann_category_ids[j]),
                "bbox": self.boxes[j].tolist(),
                "area": float(self.areas[j]),
                "segmentation": self.segmentation(j),
            }
            for j in range(first, last)
        ]


def _span(values: np.ndarray, offsets: np.ndarray, i: int) -> np.ndarray:
    return values[offsets[i] : offsets[i + 1]]


def _offsets(lengths: Iterable[int], count: int) -> np.ndarray:
    """(count + 1,) int64 offsets of entries of the given lengths."""
    out = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.fromiter(lengths, dtype=np.int64, count=count), out=out[1:])
    return out


def _ragged_ints(lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = _offsets((len(v) for v in lists), len(lists))
    values = np.fromiter(chain.from_iterable(lists), dtype=np.int64, count=int(offsets[-1]))
    return values, offsets


def _ragged_bytes(items: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = _offsets((len(b) for b in items), len(items))
    return np.frombuffer(b"".join(items), dtype=np.uint8).copy(), offsets


def _ids(value: Any) -> list[int]:
    """A federated id list; a training file's unchecked, unusable one reads as empty (training never reads it)."""
    if isinstance(value, list) and all(type(v) is int for v in value):
        return value
    return []


def _number(value: Any) -> float:
    return float(value) if type(value) in (int, float) else float("nan")


def _coordinates(polygons: Sequence[Any], owners: Sequence[int], source: Path) -> np.ndarray:
    """(C,) float64 of all polygons, converted as pycocotools converts one (``np.array(polygon, np.double)``: a JSON
    null reads as NaN, the string "2" as 2.0); a coordinate it cannot read refuses the file, naming the annotation."""
    flat = list(chain.from_iterable(polygons))
    try:
        return np.array(flat, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError):
        pass
    for polygon, owner in zip(polygons, owners):
        try:
            values = np.array(polygon, dtype=np.float64)
            if values.ndim != 1:
                raise ValueError("nested")
        except (ValueError, TypeError):
            bad = next(v for v in polygon if not _reads_as_number(v))
            raise DataFormatError(
                f"{source}: annotation {owner} has a polygon coordinate {bad!r} that is not a number; {FIX}"
            ) from None
    raise AssertionError("unreachable: every polygon converted but not all of them together")


def _reads_as_number(value: Any) -> bool:
    try:
        return np.array(value, dtype=np.float64).ndim == 0
    except (ValueError, TypeError):
        return False


def table_from_dict(data: Mapping[str, Any], *, source: Path, version: Version, split_folder: str) -> AnnotationTable:
    """The table of a parsed annotation file that ``gol.data.entries.validate_lvis_dict`` accepted."""
    images = data["images"]
    anns = data["annotations"]
    n = len(images)
    image_ids = np.fromiter((im["id"] for im in images), dtype=np.int64, count=n)
    sizes = np.array([(im["height"], im["width"]) for im in images], dtype=np.int64).reshape(n, 2)
    paths = ["/".join(image_file_parts(im, split_folder=split_folder, version=version)).encode() for im in images]
    path_bytes, path_offsets = _ragged_bytes(paths)
    neg_ids, neg_offsets = _ragged_ints([_ids(im.get("neg_category_ids")) for im in images])
    nel_ids, nel_offsets = _ragged_ints([_ids(im.get("not_exhaustive_category_ids")) for im in images])

    # Annotations grouped by image (a stable sort keeps the file's order within an image, as lvis-api's map).
    sorter = np.argsort(image_ids, kind="stable")
    ann_image_ids = np.fromiter((a["image_id"] for a in anns), dtype=np.int64, count=len(anns))
    image_pos = sorter[np.searchsorted(image_ids, ann_image_ids, sorter=sorter)]  # (M,) validated references
    order = np.argsort(image_pos, kind="stable")  # (M,)
    ann_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(image_pos, minlength=n), out=ann_offsets[1:])
    ordered = [anns[j] for j in order.tolist()]
    m = len(ordered)

    seg_kinds = np.zeros(m, dtype=np.uint8)
    polygons: list[Any] = []
    polygon_owner: list[int] = []
    polygons_per_ann = np.zeros(m, dtype=np.int64)
    rles: list[bytes] = [b""] * m
    rle_sizes = np.zeros((m, 2), dtype=np.int64)
    for j, a in enumerate(ordered):
        seg = a["segmentation"]
        if isinstance(seg, list):
            polygons.extend(seg)
            polygon_owner.extend([a["id"]] * len(seg))
            polygons_per_ann[j] = len(seg)
            continue
        height, width = (int(v) for v in seg["size"])
        rle = mask_utils.frPyObjects(seg, height, width) if isinstance(seg["counts"], list) else seg
        counts = rle["counts"]
        seg_kinds[j] = RLE
        rles[j] = counts if isinstance(counts, bytes) else str(counts).encode()
        rle_sizes[j] = (height, width)
    rle_bytes, rle_offsets = _ragged_bytes(rles)
    polygon_offsets = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(polygons_per_ann, out=polygon_offsets[1:])
    return AnnotationTable(
        image_ids=image_ids,
        image_sizes=sizes,
        path_bytes=path_bytes,
        path_offsets=path_offsets,
        neg_ids=neg_ids,
        neg_offsets=neg_offsets,
        not_exhaustive_ids=nel_ids,
        not_exhaustive_offsets=nel_offsets,
        ann_offsets=ann_offsets,
        ann_ids=np.fromiter((a["id"] for a in ordered), dtype=np.int64, count=m),
        ann_category_ids=np.fromiter((a["category_id"] for a in ordered), dtype=np.int64, count=m),
        boxes=np.array([a["bbox"] for a in ordered], dtype=np.float64).reshape(m, 4),
        areas=np.fromiter((_number(a.get("area")) for a in ordered), dtype=np.float64, count=m),
        seg_kinds=seg_kinds,
        polygon_offsets=polygon_offsets,
        coord_offsets=_offsets((len(p) for p in polygons), len(polygons)),
        coords=_coordinates(polygons, polygon_owner, source),
        rle_offsets=rle_offsets,
        rle_bytes=rle_bytes,
        rle_sizes=rle_sizes,
    )
