"""Benchmark: vectorised repeat factors vs a straightforward per-image Python loop, at LVIS v1 train scale.

``python -m gol.bench rfs [--size smoke|full] [--images N] [--annotations N] [--categories K] [--seed S]
[--json PATH]`` (full: LVIS v1 train, 100k images and 1.27M annotations of 1203 categories; smoke: 2k images)

All are timed in the same run on the same synthetic long-tailed annotations. The vectorised version takes the flat
(image, label) arrays that ``LVISDetection`` keeps; the loop is timed twice: given per-image category lists up front
(as detectron2's dataset dicts are), and from the flat annotation list (grouping by image in Python first). The
results are checked to be identical.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from gol.bench._report import add_json_option, write_json
from gol.data.samplers import RFS_THRESHOLD, RepeatFactorSampler, repeat_factors

log = logging.getLogger(__name__)

# (images, annotations, categories) per size
SIZES = {"smoke": (2_000, 25_400, 1203), "full": (100_000, 1_270_000, 1203)}


def repeat_factors_loop(per_image: Sequence[Sequence[int]], *, threshold: float) -> np.ndarray:
    """Reference r(I): one Python pass per image, as in the frameworks' original implementations."""
    num_images = len(per_image)
    image_count: dict[int, int] = {}
    for cats in per_image:
        for c in set(cats):
            image_count[c] = image_count.get(c, 0) + 1
    r_cat = {c: max(1.0, math.sqrt(threshold / (n / num_images))) for c, n in image_count.items()}
    return np.array([max((r_cat[c] for c in set(cats)), default=1.0) for cats in per_image], dtype=np.float64)


def synthetic_annotations(
    *, num_images: int, num_annotations: int, num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(M,) image index and (M,) label with a Zipf-like long tail over categories (LVIS-like skew)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, num_classes + 1) ** 1.2
    labels = rng.choice(num_classes, size=num_annotations, p=weights / weights.sum()) + 1
    image_index = rng.integers(num_images, size=num_annotations)
    return image_index, labels


class _Arrays:
    """The minimal dataset view RepeatFactorSampler needs."""

    def __init__(self, image_index: np.ndarray, labels: np.ndarray, num_images: int, num_classes: int) -> None:
        self._occ = (image_index, labels)
        self._n = num_images
        self.num_classes = num_classes

    def __len__(self) -> int:
        return self._n

    def occurrences(self) -> tuple[np.ndarray, np.ndarray]:
        return self._occ


def run(*, images: int, annotations: int, categories: int, seed: int = 0) -> dict[str, Any]:
    """Time the vectorised repeat factors, the two loops and the sampler's first epoch; returns the report."""
    image_index, labels = synthetic_annotations(
        num_images=images, num_annotations=annotations, num_classes=categories, seed=seed
    )
    order = np.argsort(image_index, kind="stable")
    splits = np.searchsorted(image_index[order], np.arange(1, images))
    per_image = [chunk.tolist() for chunk in np.split(labels[order], splits)]

    start = time.perf_counter()
    fast = repeat_factors(image_index, labels, num_images=images, num_classes=categories, threshold=RFS_THRESHOLD)
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    slow = repeat_factors_loop(per_image, threshold=RFS_THRESHOLD)
    t_slow = time.perf_counter() - start
    flat = list(zip(image_index.tolist(), labels.tolist(), strict=True))
    start = time.perf_counter()
    grouped: list[list[int]] = [[] for _ in range(images)]
    for i, c in flat:
        grouped[i].append(c)
    slow_flat = repeat_factors_loop(grouped, threshold=RFS_THRESHOLD)
    t_slow_flat = time.perf_counter() - start
    start = time.perf_counter()
    sampler = RepeatFactorSampler(dataset=_Arrays(image_index, labels, images, categories), seed=seed)
    sampler.set_epoch(0)
    epoch_len = len(sampler)
    t_epoch = time.perf_counter() - start
    return {
        "images": images, "annotations": annotations, "categories": categories, "threshold": RFS_THRESHOLD,
        "seconds": {"vectorised": t_fast, "loop_lists_given": t_slow, "loop_from_annotations": t_slow_flat,
                    "sampler_epoch": t_epoch},
        "speedup": {"loop_lists_given": t_slow / t_fast, "loop_from_annotations": t_slow_flat / t_fast},
        "identical": bool(np.array_equal(fast, slow) and np.array_equal(fast, slow_flat)),
        "max_abs_difference": float(np.abs(fast - slow).max()),
        "epoch_indices": epoch_len, "mean_repeat_factor": float(fast.mean()),
    }  # fmt: skip


def format_report(report: dict[str, Any]) -> str:
    s, x = report["seconds"], report["speedup"]
    return "\n".join([
        f"RFS repeat factors, {report['images']} images, {report['annotations']} annotations, "
        f"{report['categories']} categories, t={report['threshold']:g}",
        f"  vectorised                           {s['vectorised']:8.3f} s",
        f"  per-image loop, lists given          {s['loop_lists_given']:8.3f} s  "
        f"(vectorised is {x['loop_lists_given']:.1f}x faster)",
        f"  per-image loop, from annotation list {s['loop_from_annotations']:8.3f} s  "
        f"(vectorised is {x['loop_from_annotations']:.1f}x faster)",
        f"  max |difference| {report['max_abs_difference']:.3g} (identical: {report['identical']})",
        f"  sampler build + epoch 0 (stochastic rounding): {s['sampler_epoch']:.3f} s, "
        f"{report['epoch_indices']} indices, mean r(I) {report['mean_repeat_factor']:.3f}",
    ])  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gol.bench rfs", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--images", type=int, default=None, help="default: the size's")
    parser.add_argument("--annotations", type=int, default=None, help="default: the size's")
    parser.add_argument("--categories", type=int, default=None, help="default: the size's")
    parser.add_argument("--seed", type=int, default=0)
    add_json_option(parser)
    args = parser.parse_args(argv)
    images, annotations, categories = SIZES[args.size]
    images = args.images or images
    annotations = args.annotations or annotations
    categories = args.categories or categories
    if min(images, annotations, categories) < 1:
        parser.error("--images, --annotations and --categories must be >= 1")
    # force: replace any root handler a library installed at import time (lvis does so)
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    report = run(images=images, annotations=annotations, categories=categories, seed=args.seed)
    log.info("%s", format_report(report))
    write_json(report, args.json)
    return 0 if report["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
