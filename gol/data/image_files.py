"""Where an LVIS image record's file lives under the COCO image root.

LVIS v1 image records name their file only through ``coco_url``
(``http://images.cocodataset.org/train2017/000000xxxxxx.jpg``); v1 val images live in both COCO train2017 and val2017,
so the file is ``<image_root>/<split folder>/<file>`` from the last two parts of the URL (as detectron2 and mmdet
do). LVIS v0.5 records carry ``file_name`` in COCO-2014 spelling (``COCO_val2014_000000xxxxxx.jpg``); the 2017 file
is its last 16 characters, found in the split's own folder (train2017 for train, val2017 for val), as detectron2
does. Each version falls back to the other field when its own is absent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from gol.data.validation import DataFormatError

Version = Literal["v1", "v0.5"]
VERSIONS: tuple[str, ...] = ("v1", "v0.5")
COCO_2014_PREFIX = "COCO_"
COCO_2017_NAME_LENGTH = 16  # "000000xxxxxx.jpg"


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
