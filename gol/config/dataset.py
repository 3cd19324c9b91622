"""Schemas of the ``dataset`` group: LVIS v1 / v0.5 and the embedded generated dataset (builders in ``gol.data``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

GROUP = "dataset"
# Annotation files parsed once per node and memory-mapped by every process (gol.data.table_cache); null parses them
# in every process.
CACHE_DIR = "${paths.data_root}/cache"


@dataclass
class LVISDatasetConf:
    """LVIS from its annotation JSONs and the COCO images (``image_root`` holds train2017/ and val2017/)."""

    _target_: str = "gol.data.build_lvis"
    version: str = "v1"  # "v1" or "v0.5"
    train_ann: str = MISSING
    val_ann: str = MISSING
    image_root: str = MISSING
    # Shorter side drawn per training image, LVIS recipes (paper-notes section 2): 640..800 step 32, longer side
    # capped at 1333; test at 800. The model resizes (gol.models.transform).
    train_sizes: list[int] = field(default_factory=lambda: [640, 672, 704, 736, 768, 800])
    test_size: int = 800
    max_size: int = 1333
    flip_prob: float = 0.5
    cache_dir: str | None = CACHE_DIR


@dataclass
class EmbeddedDatasetConf:
    """The generated long-tailed shapes dataset (LVIS v1 format), cached under ``root`` by its parameters."""

    _target_: str = "gol.data.build_embedded"
    root: str = MISSING
    seed: int = 0  # the dataset's own seed, independent of the training seed
    num_shapes: int = 5
    num_colours: int = 4
    num_textures: int = 3
    num_train: int = 1200
    num_val: int = 250
    max_images_per_category: int = 250
    min_images_per_category: int = 2
    image_size: int = 128
    max_objects: int = 4
    # Images are 112..144 px per side: resize around their own size (no CPU time spent upsampling).
    train_sizes: list[int] = field(default_factory=lambda: [112, 120, 128, 136, 144])
    test_size: int = 128
    max_size: int = 256
    flip_prob: float = 0.5
    cache_dir: str | None = CACHE_DIR


SCHEMAS = {"lvis_schema": LVISDatasetConf, "embedded_schema": EmbeddedDatasetConf}
