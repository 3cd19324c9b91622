"""One split of an LVIS v1 / v0.5 instance segmentation file, read from its columnar table.

Shape shorthand: N = images in the split, M = annotations, K = foreground categories. Labels are 1..K in ascending
category id order, 0 = background (torchvision's convention).

The annotations live in an ``AnnotationTable`` (flat numpy columns, memory-mapped from the node's cache when the
dataset has a ``cache_dir``; see ``gol.data.table_cache``): no per-process ``lvis.LVIS`` index and no Python object
per annotation, so processes and loader workers share the pages and stay flat in memory. Image files are found as
``gol.data.image_files`` says. Images are decoded to uint8 and stay uint8 until the model (``gol.models.transform``
converts them on its device).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image

from gol.data.category_stats import category_stats
from gol.data.fractal import FracalStats, fracal_stats
from gol.data.image_files import VERSIONS, Version
from gol.data.stats import CategoryStats
from gol.data.table_cache import cached_table
from gol.data.targets import Target, annotations_to_target
from gol.data.transforms import Transform
from gol.data.validation import ANNOTATION_HINT, DataFormatError, require_dir, require_file

log = logging.getLogger(__name__)

IMAGE_ROOT_HINT = (
    "put the COCO 2017 images (train2017/ and val2017/, https://cocodataset.org/#download) in one folder and set "
    "COCO_ROOT (or paths.coco_root) to it"
)
_DECODER_PREFIX = re.compile(r"^\w+, \S+:\d+, ")  # "decode_png, .../decode_png.cpp:79, " before torchvision's reason


class ImageFileError(DataFormatError):
    """An image file that exists but cannot be read or decoded, or whose size differs from its record."""


def load_image(path: Path) -> Tensor:
    """(3, H, W) uint8, RGB (grey and RGBA files are converted).

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
        return decode_image(data, mode=ImageReadMode.RGB)
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
        cache_dir: where the file's columnar table is cached for every process of the node
            (``gol.data.table_cache``); None parses the file in this process.
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
        cache_dir: Path | None = None,
    ) -> None:
        if version not in VERSIONS:
            raise DataFormatError(f"unknown LVIS version {version!r}; expected one of {list(VERSIONS)}")
        annotation_file = Path(annotation_file)
        image_root = Path(image_root)
        require_file(annotation_file, what="annotation file", hint=ANNOTATION_HINT)
        require_dir(image_root, what="image root", hint=IMAGE_ROOT_HINT)
        table, categories = cached_table(
            annotation_file, cache_dir=None if cache_dir is None else Path(cache_dir), version=version,
            split_folder=split_folder, federated=federated,
        )  # fmt: skip

        self.annotation_file = annotation_file
        self.image_root = image_root
        self.version: Version = version
        self.split_folder = split_folder
        self.transforms = transforms
        self.table = table
        self.categories: tuple[dict[str, Any], ...] = tuple(sorted(categories, key=lambda c: c["id"]))
        self.category_ids: tuple[int, ...] = tuple(int(c["id"]) for c in self.categories)
        self.category_names: tuple[str, ...] = tuple(str(c["name"]) for c in self.categories)
        self.category_frequency: tuple[str, ...] = tuple(str(c["frequency"]) for c in self.categories)
        self.label_of: dict[int, int] = {cid: i + 1 for i, cid in enumerate(self.category_ids)}

        counts = np.diff(table.ann_offsets)  # (N_file,) annotations per image of the file
        rows = np.flatnonzero(counts > 0) if drop_unannotated else np.arange(len(table))
        if drop_unannotated:
            log.info("%s: %d of %d images have annotations", annotation_file.name, rows.size, len(table))
        if rows.size == 0:
            raise DataFormatError(f"{annotation_file} has no usable images")
        self.rows: np.ndarray = rows  # (N,) position of each dataset image in the table
        self.image_ids: list[int] = table.image_ids[rows].tolist()

        # Flat (image index, label) per annotation, for class statistics and repeat factors without Python loops.
        position = np.full(len(table), -1, dtype=np.int64)
        position[rows] = np.arange(rows.size)
        ann_position = position[table.ann_image_index()]  # (M_file,) dataset index, -1 outside the split
        in_split = ann_position >= 0
        cat_arr = np.asarray(self.category_ids, dtype=np.int64)
        self.ann_image_index: np.ndarray = ann_position[in_split]  # (M,) index into image_ids
        self.ann_labels: np.ndarray = np.searchsorted(cat_arr, table.ann_category_ids[in_split]) + 1  # (M,) in 1..K

        self._check_image_files()

    def _check_image_files(self) -> None:
        """Every image file of the split exists, found by listing each folder once (cheap on network file systems,
        where 100k separate look-ups are not); whether a file decodes is only known when it is loaded."""
        parts = [self.table.image_path(int(row)).split("/", 1) for row in self.rows]
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

    def image_path(self, index: int) -> Path:
        """The file of dataset image ``index``."""
        return self.image_root / self.table.image_path(int(self.rows[index]))

    def __len__(self) -> int:
        return len(self.image_ids)

    def get_height_and_width(self, index: int) -> tuple[int, int]:
        """Size from the annotation file, without reading the image (torchvision's aspect-ratio grouping uses it)."""
        height, width = self.table.image_sizes[self.rows[index]].tolist()
        return int(height), int(width)

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

    def fracal_stats(self, *, grid: int, min_instances: int) -> FracalStats:
        """FRACAL's statistics of this split: the box centres' fractal dimension over the split's annotations, and
        the image frequencies over every image of the file (the reference divides by all of them)."""
        position = np.full(len(self.table), -1, dtype=np.int64)
        position[self.rows] = np.arange(self.rows.size)
        ann_rows = self.table.ann_image_index()  # (M_file,) table row of each annotation
        in_split = position[ann_rows] >= 0  # (M_file,) the split's annotations, in the order of ann_labels
        return fracal_stats(
            category_ids=self.category_ids,
            boxes=self.table.boxes[in_split],
            image_sizes=self.table.image_sizes[ann_rows[in_split]],
            image_index=self.ann_image_index,
            labels=self.ann_labels,
            num_images=len(self.table),
            grid=grid,
            min_instances=min_instances,
            source=str(self.annotation_file),
        )

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        image_id = self.image_ids[index]
        row = int(self.rows[index])
        height, width = self.get_height_and_width(index)
        path = self.image_path(index)
        image = load_image(path)  # (3, H, W) uint8
        if tuple(image.shape[-2:]) != (height, width):
            raise ImageFileError(
                f"image {image_id} ({path}) is {image.shape[-2]}x{image.shape[-1]} but its record in "
                f"{self.annotation_file} says {height}x{width}; fix the record or the file"
            )
        try:
            target = annotations_to_target(
                self.table.annotations(row), image_id=image_id, height=height, width=width, label_of=self.label_of
            )
        except (ValueError, TypeError, OverflowError) as error:  # a coordinate pycocotools cannot rasterise
            raise DataFormatError(
                f"{self.annotation_file}: the annotations of image {image_id} cannot be rasterised "
                f"({str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}); fix them"
            ) from None
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def __repr__(self) -> str:
        return f"LVISDetection({self.annotation_file.name}, {self.version}, images={len(self)}, K={self.num_classes})"
