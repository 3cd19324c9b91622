"""Computing `CategoryStats` of a training split from its annotations (vectorised; LVIS v1 train takes < 1 s).

Shape shorthand: M = annotations, N = images, K = foreground categories; labels are 1..K (0 = background).

Counts come from the annotations, not from the JSON's ``image_count`` / ``instance_count`` fields: the annotations are
what the model is trained on, so a subset JSON (a debug split, a filtered file) still gets its own, true counts. On
the full LVIS train files the two agree; :func:`compare_with_json_counts` checks that and logs any disagreement. The
frequency group (r/c/f) comes from the JSON's ``frequency`` field because LVIS evaluation groups APr/APc/APf by it.
The denominator ``num_images`` is the number of training images the model samples (images with at least one
annotation, see ``LVISDetection``); the official EQL/GOL frequency files imply 99,388 such images on LVIS v1 train.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gol.data.stats import CategoryStats

log = logging.getLogger(__name__)


def image_label_pairs(
    image_index: np.ndarray, labels: np.ndarray, *, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (image, label) pairs of M annotations, as two (P,) int64 arrays sorted by image then label."""
    keys = np.sort(image_index.astype(np.int64) * (num_classes + 1) + labels.astype(np.int64))  # (M,)
    # Sort + neighbour compare instead of np.unique, which is ~70x slower here on NumPy 2.4 (measured, 1.27M keys).
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if keys.size else keys  # (P,)
    return keys // (num_classes + 1), keys % (num_classes + 1)


def category_stats(
    *,
    category_ids: Sequence[int],
    names: Sequence[str],
    frequency: Sequence[str],
    image_index: np.ndarray,
    labels: np.ndarray,
    num_images: int,
) -> CategoryStats:
    """`CategoryStats` from the annotations of a training split.

    Args:
        category_ids, names, frequency: (K,) per category, in label order (label = index + 1).
        image_index: (M,) int, index in [0, num_images) of each annotation's image.
        labels: (M,) int, label in 1..K of each annotation.
        num_images: N, number of training images (denominator of the image frequency).
    """
    k = len(category_ids)
    labels = np.asarray(labels, dtype=np.int64)
    image_index = np.asarray(image_index, dtype=np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > k):
        raise ValueError(f"labels must lie in 1..{k}, got range {labels.min()}..{labels.max()}")
    instance_count = np.bincount(labels, minlength=k + 1)[1:]  # (K,)
    _, pair_labels = image_label_pairs(image_index, labels, num_classes=k)
    image_count = np.bincount(pair_labels, minlength=k + 1)[1:]  # (K,)
    return CategoryStats(
        category_ids=tuple(int(c) for c in category_ids),
        names=tuple(names),
        image_count=torch.from_numpy(image_count.astype(np.int64)),
        instance_count=torch.from_numpy(instance_count.astype(np.int64)),
        frequency=tuple(frequency),
        num_images=int(num_images),
    )


def compare_with_json_counts(stats: CategoryStats, categories: Sequence[dict[str, Any]], *, source: str) -> int:
    """Log categories whose JSON ``image_count`` / ``instance_count`` differ from the counted ones.

    Returns the number of disagreeing categories (0 on the full LVIS train files; a subset JSON legitimately differs).
    """
    by_id = {c["id"]: c for c in categories}
    json_images = np.array([by_id[c]["image_count"] for c in stats.category_ids], dtype=np.int64)
    json_instances = np.array([by_id[c].get("instance_count", -1) for c in stats.category_ids], dtype=np.int64)
    has_instances = json_instances >= 0
    bad = (json_images != stats.image_count.numpy()) | (
        has_instances & (json_instances != stats.instance_count.numpy())
    )
    n_bad = int(bad.sum())
    if n_bad:
        first = int(np.flatnonzero(bad)[0])
        log.warning(
            "%s: %d of %d categories have JSON image_count/instance_count different from their annotations "
            "(e.g. id %d: JSON %d images, counted %d); using the counted values (expected for a subset file)",
            source,
            n_bad,
            stats.num_classes,
            stats.category_ids[first],
            json_images[first],
            int(stats.image_count[first]),
        )
    return n_bad
