"""Data layer: LVIS v1 / v0.5 and the embedded generated dataset, targets, flips, samplers, class statistics.

``instantiate(cfg.dataset)`` calls :func:`build_lvis` or :func:`build_embedded` and returns a :class:`DataSource`;
``instantiate(cfg.sampler)`` gives a partial of :class:`RandomSampler` or :class:`RepeatFactorSampler`.
"""

from gol.data.category_stats import category_stats
from gol.data.embedded import EmbeddedParams, ensure_embedded
from gol.data.lvis_dataset import LVISDetection, load_image, resolve_image_path
from gol.data.samplers import RandomSampler, RepeatFactorSampler, repeat_factors
from gol.data.source import DataSource, build_embedded, build_lvis, collate
from gol.data.stats import CategoryStats
from gol.data.targets import annotations_to_target
from gol.data.transforms import Compose, RandomHorizontalFlip
from gol.data.validation import DataFormatError

__all__ = [
    "CategoryStats",
    "Compose",
    "DataFormatError",
    "DataSource",
    "EmbeddedParams",
    "LVISDetection",
    "RandomHorizontalFlip",
    "RandomSampler",
    "RepeatFactorSampler",
    "annotations_to_target",
    "build_embedded",
    "build_lvis",
    "category_stats",
    "collate",
    "ensure_embedded",
    "load_image",
    "repeat_factors",
    "resolve_image_path",
]
