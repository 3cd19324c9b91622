"""Early, one-line checks of LVIS-format annotation files and image folders (before any expensive work)."""

from __future__ import annotations

import gc
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson


class DataFormatError(ValueError):
    """An annotation file or dataset setting that the data layer cannot use; the message says how to fix it."""


REQUIRED_KEYS = ("images", "annotations", "categories")
REQUIRED_CATEGORY_FIELDS = ("id", "name", "frequency", "image_count")
FEDERATED_IMAGE_FIELDS = ("neg_category_ids", "not_exhaustive_category_ids")
ANNOTATION_HINT = (
    "LVIS annotations are not downloaded automatically: put lvis_v1_train.json / lvis_v1_val.json (or the v0.5 "
    "files) from https://www.lvisdataset.org/dataset in one folder and set LVIS_ROOT (or paths.lvis_root) to it"
)


def require_file(path: Path, *, what: str, hint: str) -> None:
    """Raise FileNotFoundError naming ``what`` and how to fix it if ``path`` is not an existing file."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} ({hint})")


def require_dir(path: Path, *, what: str, hint: str) -> None:
    """Raise FileNotFoundError naming ``what`` and how to fix it if ``path`` is not an existing folder."""
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path} ({hint})")


def load_annotation_json(path: Path) -> dict[str, Any]:
    """Read an annotation JSON, refusing anything that is not a JSON object.

    orjson parses it (about 3x faster than the standard library on LVIS-sized files); what orjson refuses but Python's
    ``json`` (lvis-api's parser) reads, such as ``NaN`` or integers beyond 64 bits, is read by ``json``, which also
    words the error of a file that is not JSON at all."""
    require_file(path, what="annotation file", hint=ANNOTATION_HINT)
    raw = path.read_bytes()
    collecting = gc.isenabled()
    gc.disable()  # the parse creates millions of objects that all stay alive: collections during it are pure cost
    try:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f"{e.msg} at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else "not UTF-8 text"
        raise DataFormatError(f"{path} is not valid JSON ({where}); expected an LVIS annotation file") from e
    finally:
        del raw
        if collecting:
            gc.enable()
    if not isinstance(data, dict):
        raise DataFormatError(
            f"{path} holds a JSON {type(data).__name__}, expected an LVIS/COCO object with {list(REQUIRED_KEYS)}"
        )
    return data


def validate_sizes(*, train_sizes: Sequence[int], test_size: int, max_size: int, flip_prob: float) -> None:
    """Check the resize and flip settings a DataSource carries."""
    if len(train_sizes) == 0 or any(int(s) <= 0 for s in train_sizes):
        raise DataFormatError(
            f"train_sizes must be a non-empty list of positive shorter-side lengths, got {list(train_sizes)}"
        )
    if test_size <= 0:
        raise DataFormatError(f"test_size must be positive, got {test_size}")
    largest = max(max(train_sizes), test_size)
    if max_size < largest:
        raise DataFormatError(f"max_size ({max_size}) must be at least the largest train/test size ({largest})")
    if not 0.0 <= flip_prob <= 1.0:
        raise DataFormatError(f"flip_prob must lie in [0, 1], got {flip_prob}")
