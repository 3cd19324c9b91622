"""Data layer: LVIS v1 / v0.5 and the embedded generated dataset, targets, flips, samplers, class statistics.

``instantiate(cfg.dataset)`` calls :func:`build_lvis` or :func:`build_embedded` and returns a :class:`DataSource`;
``instantiate(cfg.sampler)`` gives a partial of :class:`RandomSampler` or :class:`RepeatFactorSampler`.

The names below are imported on first use (PEP 562), so the torch-free modules of this package (the annotation
checks, the columnar table and its cache, which a child process builds) load without torch. ``category_stats``
is imported from its module (``gol.data.category_stats``), whose name it shares.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gol.data.embedded import EmbeddedParams, ensure_embedded
    from gol.data.image_files import resolve_image_path
    from gol.data.lvis_dataset import LVISDetection, load_image
    from gol.data.samplers import RandomSampler, RepeatFactorSampler, repeat_factors
    from gol.data.source import DataSource, build_embedded, build_lvis, collate
    from gol.data.stats import CategoryStats
    from gol.data.targets import annotations_to_target
    from gol.data.transforms import Compose, RandomHorizontalFlip
    from gol.data.validation import DataFormatError

_HOME = {
    "CategoryStats": "stats",
    "Compose": "transforms",
    "DataFormatError": "validation",
    "DataSource": "source",
    "EmbeddedParams": "embedded",
    "LVISDetection": "lvis_dataset",
    "RandomHorizontalFlip": "transforms",
    "RandomSampler": "samplers",
    "RepeatFactorSampler": "samplers",
    "annotations_to_target": "targets",
    "build_embedded": "source",
    "build_lvis": "source",
    "collate": "source",
    "ensure_embedded": "embedded",
    "load_image": "lvis_dataset",
    "repeat_factors": "samplers",
    "resolve_image_path": "image_files",
}
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
    "collate",
    "ensure_embedded",
    "load_image",
    "repeat_factors",
    "resolve_image_path",
]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
