"""LVIS v1 / v0.5 instance segmentation split read through the lvis-api (``lvis.LVIS``).

Shape shorthand: N = images in the split, M = annotations, K = foreground categories. Labels are 1..K in ascending
category id order, 0 = background (torchvision's convention).

Image files. LVIS v1 image records name their file only through ``coco_url``
(``http://images.cocodataset.org/train2017/000000xxxxxx.jpg``); v1 val images live in both COCO train2017 and val2017,
so the file is ``<image_root>/<split folder>/<file>`` from the last two parts of the URL (as detectron2 and mmdet
do). LVIS v0.5 records carry ``file_name`` in COCO-2014 spelling (``COCO_val2014_000000xxxxxx.jpg``); the 2017 file
is its last 16 characters, found in the split's own folder (train2017 for train, val2017 for val), as detectron2
does. Each version falls back to the other field when its own is absent.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image

from gol.data.category_stats import category_stats
from gol.data.entries import validate_lvis_dict
from gol.data.stats import CategoryStats
from gol.data.targets import Target, annotations_to_target
from gol.data.transforms import Transform
from gol.data.validation import (
    ANNOTATION_HINT,
    DataFormatError,
    load_annotation_json,
    require_dir,
    require_file,
)
from gol.lvis_compat import LVIS  # the project's one lvis import point (keeps root logging intact)

log = logging.getLogger(__name__)

Version = Literal["v1", "v0.5"]
VERSIONS: tuple[str, ...] = ("v1", "v0.5")
COCO_2014_PREFIX = "COCO_"
COCO_2017_NAME_LENGTH = 16  # "000000xxxxxx.jpg"
IMAGE_ROOT_HINT = (
    "put the COCO 2017 images (train2017/ and val2017/, https://cocodataset.org/#download) in one folder and set "
    "COCO_ROOT (or paths.coco_root) to it"
)
_DECODER_PREFIX = re.compile(r"^\w+, \S+:\d+, ")  # "decode_png, .../decode_png.cpp:79, " before torchvision's reason


class ImageFileError(DataFormatError):
    """An image file that exists but cannot be read or decoded, or whose size differs from its record."""


class _PreloadedLVIS(LVIS):
    """``lvis.LVIS`` over an already parsed (and validated) JSON, so the file is read once."""

    def __init__(self, dataset: dict[str, Any], source: Path) -> None:
        self._preloaded = dataset
        super().__init__(str(source))

    def _load_json(self, path: str) -> dict[str, Any]:
        return self._preloaded


def _from_coco_url(record: Mapping[str, Any]) -> tuple[str, str]:
    split_folder, file_name = str(record["coco_url"]).split("/")[-2:]
    return split_folder, file_name


def _from_file_name(record: Mapping[str, Any], split_folder: str) -> tuple[str, str]:
    name = os.path.basename(str(record["file_name"]))
    if name.startswith(COCO_2014_PREFIX):  # COCO_train2014_000000xxxxxx.jpg -> 000000xxxxxx.jpg
        name = name[-COCO_2017_NAME_LENGTH:]
    return split_folder, name


def image_file_parts(record: Mapping[str, Any], *, split_folder: str, version: Version) -> tuple[str, str]:
    """(folder under the image root, file name) of one LVIS image record (see the module docstring for the rules)."""
    first, second = ("coco_url", "file_name") if version == "v1" else ("file_name", "coco_url")
    field = first if first in record else second
    if field == "coco_url":
        return _from_coco_url(record)
    if field == "file_name":
        return _from_file_name(record, split_folder)
    raise DataFormatError(f"image {record.get('id')} has neither 'coco_url' nor 'file_name'")


def resolve_image_path(record: Mapping[str, Any], *, image_root: Path, split_folder: str, version: Version) -> Path:
    """The image file of one LVIS image record (see the module docstring for the rules)."""
    folder, name = image_file_parts(record, split_folder=split_folder, version=version)
    return image_root / folder / name


def load_image(path: Path) -> Tensor:
    """(3, H, W) float32 in [0, 1], RGB (grey and RGBA files are converted).

    Raises FileNotFoundError for a missing file and ImageFileError for one that cannot be read or decoded
    (garbage bytes, a truncated JPEG or PNG), each naming the path in one line.
    """
    try:
        data = torch.from_numpy(np.fromfile(path, dtype=np.uint8))
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except OSError as error:
        raise ImageFileError(f"cannot read image file {path}: {error.strerror or error}") from None
    try:
        return decode_image(data, mode=ImageReadMode.RGB).float().div_(255.0)
    except RuntimeError as error:
        reason = _DECODER_PREFIX.sub("", str(error).strip().splitlines()[0] if str(error).strip() else "")
        raise ImageFileError(f"cannot decode image file {path} ({reason or 'empty file'}); replace the file") from None


class LVISDetection(Dataset[tuple[Tensor, Target]]):
    """One split of an LVIS-format dataset, yielding ``(image, target)`` (see ``gol.data.targets``).

    Args:
        annotation_file: LVIS v1 or v0.5 annotation JSON.
        image_root: folder holding the split folders (``train2017/``, ``val2017/``).
        version: "v1" or "v0.5" (which image record field names the file first).
        split_folder: folder of this split under ``image_root`` for records that only carry ``file_name``.
        transforms: applied to every (image, target); None for evaluation.
        drop_unannotated: keep only images with at least one annotation (training: detectron2's
            FILTER_EMPTY_ANNOTATIONS and mmdet's filter_empty_gt; the official EQL/GOL image frequencies divide
            by this count, 99,388 on LVIS v1 train).
        federated: require the per-image ``neg_category_ids`` / ``not_exhaustive_category_ids`` (val splits).
    """

    def __init__(
        self,
        *,
        annotation_file: Path,
        image_root: Path,
        version: Version,
        split_folder: str,
        transforms: Transform | None,
        drop_unannotated: bool,
        federated: bool,
    ) -> None:
        if version not in VERSIONS:
            raise DataFormatError(f"unknown LVIS version {version!r}; expected one of {list(VERSIONS)}")
        annotation_file = Path(annotation_file)
        image_root = Path(image_root)
        require_file(annotation_file, what="annotation file", hint=ANNOTATION_HINT)
        require_dir(image_root, what="image root", hint=IMAGE_ROOT_HINT)
        data = load_annotation_json(annotation_file)
        columns = validate_lvis_dict(data, source=annotation_file, federated=federated)

        self.annotation_file = annotation_file
        self.image_root = image_root
        self.version: Version = version
        self.split_folder = split_folder
        self.transforms = transforms
        self.lvis = _PreloadedLVIS(data, annotation_file)

        categories = sorted(data["categories"], key=lambda c: c["id"])
        self.category_ids: tuple[int, ...] = tuple(int(c["id"]) for c in categories)
        self.category_names: tuple[str, ...] = tuple(str(c["name"]) for c in categories)
        self.category_frequency: tuple[str, ...] = tuple(str(c["frequency"]) for c in categories)
        self.label_of: dict[int, int] = {cid: i + 1 for i, cid in enumerate(self.category_ids)}

        ids = columns.image_ids.tolist()
        ann_image_ids = columns.ann_image_ids  # (M,)
        if drop_unannotated:
            annotated = set(np.unique(ann_image_ids).tolist())
            ids = [i for i in ids if i in annotated]
            log.info("%s: %d of %d images have annotations", annotation_file.name, len(ids), len(data["images"]))
        if not ids:
            raise DataFormatError(f"{annotation_file} has no usable images")
        self.image_ids: list[int] = ids

        # Flat (image index, label) per annotation, for class statistics and repeat factors without Python loops.
        order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")
        sorted_ids = np.asarray(ids, dtype=np.int64)[order]
        pos = np.searchsorted(sorted_ids, ann_image_ids).clip(max=len(ids) - 1)
        in_split = sorted_ids[pos] == ann_image_ids  # (M,)
        ann_cats = columns.ann_category_ids  # (M,)
        cat_arr = np.asarray(self.category_ids, dtype=np.int64)
        self.ann_image_index: np.ndarray = order[pos[in_split]]  # (M,) index into image_ids
        self.ann_labels: np.ndarray = np.searchsorted(cat_arr, ann_cats[in_split]) + 1  # (M,) in 1..K

        self._check_image_files()

    def _check_image_files(self) -> None:
        """Every image file of the split exists, found by listing each folder once (cheap on network file systems,
        where 100k separate look-ups are not); whether a file decodes is only known when it is loaded."""
        imgs = self.lvis.imgs
        parts = [
            image_file_parts(imgs[i], split_folder=self.split_folder, version=self.version) for i in self.image_ids
        ]
        listed: dict[str, set[str]] = {}
        for folder in {folder for folder, _ in parts}:
            path = self.image_root / folder
            listed[folder] = set(os.listdir(path)) if path.is_dir() else set()
        missing = [i for i, (folder, name) in enumerate(parts) if name not in listed[folder]]
        if missing:
            first = missing[0]
            raise FileNotFoundError(
                f"{len(missing)} of {len(parts)} image files of {self.annotation_file} are missing, e.g. image "
                f"{self.image_ids[first]}: {self.image_root.joinpath(*parts[first])} (image_root {self.image_root} "
                "should hold the split folders train2017/, val2017/)"
            )

    @property
    def num_classes(self) -> int:
        """K, the number of foreground categories."""
        return len(self.category_ids)

    def image_path(self, image_id: int) -> Path:
        return resolve_image_path(
            self.lvis.imgs[image_id], image_root=self.image_root, split_folder=self.split_folder, version=self.version
        )

    def __len__(self) -> int:
        return len(self.image_ids)

    def get_height_and_width(self, index: int) -> tuple[int, int]:
        """Size from the annotation file, without reading the image (torchvision's aspect-ratio grouping uses it)."""
        record = self.lvis.imgs[self.image_ids[index]]
        return int(record["height"]), int(record["width"])

    def occurrences(self) -> tuple[np.ndarray, np.ndarray]:
        """(M,) image index and (M,) label (1..K) of every annotation of the split."""
        return self.ann_image_index, self.ann_labels

    def category_stats(self) -> CategoryStats:
        """Counts of this split (image_count, instance_count over its images; frequency from the JSON)."""
        return category_stats(
            category_ids=self.category_ids,
            names=self.category_names,
            frequency=self.category_frequency,
            image_index=self.ann_image_index,
            labels=self.ann_labels,
            num_images=len(self),
        )

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        image_id = self.image_ids[index]
        record = self.lvis.imgs[image_id]
        height, width = int(record["height"]), int(record["width"])
        path = self.image_path(image_id)
        image = load_image(path)
        if tuple(image.shape[-2:]) != (height, width):
            raise ImageFileError(
                f"image {image_id} ({path}) is {image.shape[-2]}x{image.shape[-1]} but its record in "
                f"{self.annotation_file} says {height}x{width}; fix the record or the file"
            )
        try:
            target = annotations_to_target(
                self.lvis.img_ann_map[image_id], image_id=image_id, height=height, width=width, label_of=self.label_of
            )
        except (ValueError, TypeError, OverflowError) as error:  # a non-number inside a polygon (pycocotools)
            raise DataFormatError(
                f"{self.annotation_file}: the annotations of image {image_id} cannot be rasterised "
                f"({str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}); fix them"
            ) from None
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def __repr__(self) -> str:
        return f"LVISDetection({self.annotation_file.name}, {self.version}, images={len(self)}, K={self.num_classes})"
