"""The embedded dataset: a seeded, long-tailed, LVIS v1-format dataset generated on the fly (no download, CPU only).

K categories = shape x colour x texture (default 5 x 4 x 3 = 60). Each category gets a target number of training
images on a geometric curve from ``max_images_per_category`` down to ``min_images_per_category``, so that rare
(<= 10 images), common (11-100) and frequent (> 100) categories all exist. Images (about ``image_size`` px, PNG)
hold 1-``max_objects`` non-overlapping objects on a plain background; masks are exact (see ``embedded_render``).

Layout (the same loader as LVIS v1 reads it; val images sit in both folders, as LVIS v1 val does in COCO):
```
<root>/<key>/lvis_v1_train.json  lvis_v1_val.json  params.json  train2017/*.png  val2017/*.png
```
``<key>`` encodes every generator parameter, so a dataset is generated once and reused. It is written into a
temporary folder and renamed into place, so concurrent runs never see half a dataset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gol.data.embedded_layout import SplitLayout, draw_split, frequency_of, layout_split
from gol.data.embedded_render import CategoryLook, category_looks

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when the output for given parameters changes; part of the cache key
TRAIN_JSON = "lvis_v1_train.json"
VAL_JSON = "lvis_v1_val.json"
VAL_MIN_IMAGES = 2  # every category appears in at least this many val images, so every APr/APc term is defined


@dataclass(frozen=True)
class EmbeddedParams:
    """Everything the generated dataset depends on (and nothing else)."""

    seed: int = 0
    num_shapes: int = 5
    num_colours: int = 4
    num_textures: int = 3
    num_train: int = 1200
    num_val: int = 250
    max_images_per_category: int = 250  # the most frequent category's training images
    min_images_per_category: int = 2  # the rarest category's training images
    image_size: int = 128  # images are image_size +- 16 px on each side
    max_objects: int = 4

    def __post_init__(self) -> None:
        checks = {
            "seed": (self.seed, 0, 2**63 - 1),
            "num_train": (self.num_train, 1, 10**6),
            "num_val": (self.num_val, 1, 10**6),
            "image_size": (self.image_size, 64, 1024),
            "max_objects": (self.max_objects, 1, 9),  # annotation ids are image_id * 10 + object index
        }
        for name, (value, lo, hi) in checks.items():
            if not lo <= value <= hi:
                raise ValueError(f"embedded dataset: {name} must lie in {lo}..{hi}, got {value}")
        category_looks(self.num_shapes, self.num_colours, self.num_textures)  # range checks with clear messages
        _check_reachable(self)

    @property
    def num_categories(self) -> int:
        return self.num_shapes * self.num_colours * self.num_textures

    def key(self) -> str:
        """Cache folder name: readable prefix plus a hash of every parameter and the generator version."""
        blob = json.dumps({"version": GENERATOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        return f"k{self.num_categories}-n{self.num_train}-v{self.num_val}-s{self.seed}-{digest}"


def _count_curve(params: EmbeddedParams) -> np.ndarray:
    """(K,) training images per category by frequency rank: geometric from the most to the least frequent."""
    k = params.num_categories
    lo, hi = params.min_images_per_category, params.max_images_per_category
    if not 1 <= lo <= hi <= params.num_train:
        raise ValueError(
            f"need 1 <= min_images_per_category ({lo}) <= max_images_per_category ({hi}) "
            f"<= num_train ({params.num_train})"
        )
    return np.rint(np.geomspace(hi, lo, k)).astype(np.int64) if k > 1 else np.array([hi], dtype=np.int64)


def _check_reachable(params: EmbeddedParams) -> None:
    """Refuse parameters whose long tail misses a frequency group or cannot fill the images (before any work)."""
    curve = _count_curve(params)
    groups = {frequency_of(int(c)) for c in curve}
    if groups != {"r", "c", "f"}:
        raise ValueError(
            f"the category image counts ({params.max_images_per_category}..{params.min_images_per_category} over "
            f"{params.num_categories} categories) give groups {sorted(groups)}; need rare, common and frequent: use "
            "max_images_per_category > 100, min_images_per_category <= 10 and enough categories"
        )
    splits = (("train", curve.sum(), params.num_train), ("val", val_image_counts(curve, params).sum(), params.num_val))
    for split, total, n in splits:
        if not n <= total <= n * params.max_objects:
            raise ValueError(
                f"{total} category-image pairs cannot fill {n} {split} images with 1..{params.max_objects} categories "
                f"each; change num_{split}, max_objects or the images per category"
            )


def train_image_counts(params: EmbeddedParams, rng: np.random.Generator) -> np.ndarray:
    """(K,) training images per category: the long-tail curve over a seeded permutation of the categories."""
    return _count_curve(params)[rng.permutation(params.num_categories)]


def val_image_counts(train_counts: np.ndarray, params: EmbeddedParams) -> np.ndarray:
    """(K,) val images per category: the training proportions, but at least ``VAL_MIN_IMAGES`` each."""
    scaled = np.rint(train_counts * (params.num_val / params.num_train)).astype(np.int64)
    return np.maximum(scaled, min(VAL_MIN_IMAGES, params.num_val))


def generate(params: EmbeddedParams, out_dir: Path) -> None:
    """Write the dataset of ``params`` into the (new, empty) folder ``out_dir``."""
    rng = np.random.default_rng(np.random.SeedSequence(params.seed))
    looks = category_looks(params.num_shapes, params.num_colours, params.num_textures)
    train_counts = train_image_counts(params, rng)
    val_counts = val_image_counts(train_counts, params)
    # One generator drives both splits in a fixed order: the output is a pure function of params.
    sizes = {"image_size": params.image_size, "max_objects": params.max_objects}
    train = layout_split(train_counts, num_images=params.num_train, **sizes, rng=rng, split="train", first_image_id=1)
    val = layout_split(
        val_counts, num_images=params.num_val, **sizes, rng=rng, split="val", first_image_id=params.num_train + 1
    )
    (out_dir / "train2017").mkdir()
    (out_dir / "val2017").mkdir()
    train_json = draw_split(train, looks=looks, root=out_dir)
    val_json = draw_split(val, looks=looks, root=out_dir)
    categories = _categories(looks, train)
    for name, body in ((TRAIN_JSON, train_json), (VAL_JSON, val_json)):
        body["categories"] = categories
        with (out_dir / name).open("w") as f:
            json.dump(body, f, separators=(",", ":"))
    with (out_dir / "params.json").open("w") as f:
        json.dump({"generator_version": GENERATOR_VERSION, **dataclasses.asdict(params)}, f, indent=2, sort_keys=True)


def _categories(looks: list[CategoryLook], train: SplitLayout) -> list[dict[str, Any]]:
    """LVIS category entries; counts and frequency come from the generated training annotations."""
    image_count, instance_count = train.category_counts(len(looks))
    return [
        {
            "id": i + 1,
            "name": look.name,
            "synset": f"{look.name}.n.01",
            "synonyms": [look.name],
            "def": look.definition,
            "frequency": frequency_of(int(image_count[i])),
            "image_count": int(image_count[i]),
            "instance_count": int(instance_count[i]),
        }
        for i, look in enumerate(looks)
    ]


def ensure_embedded(root: Path, params: EmbeddedParams) -> Path:
    """The folder of the dataset of ``params`` under ``root``, generating it once (atomically) if absent."""
    root = Path(root)
    final = root / params.key()
    if (final / VAL_JSON).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{params.key()}-", dir=root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the dataset should be as readable as a normal folder
    try:
        start = time.perf_counter()
        generate(params, tmp)
        elapsed = time.perf_counter() - start
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / VAL_JSON).is_file():
                raise
            log.info("embedded dataset %s was written concurrently; using that copy", final)
        else:
            log.info("generated embedded dataset %s in %.1f s", final, elapsed)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
