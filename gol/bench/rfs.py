"""Benchmark: vectorised repeat factors vs a straightforward per-image Python loop, at LVIS v1 train scale.

``python -m gol.bench.rfs [--images 100000] [--annotations 1270000] [--categories 1203] [--seed 0]``

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

import numpy as np

from gol.data.samplers import RFS_THRESHOLD, RepeatFactorSampler, repeat_factors

log = logging.getLogger(__name__)


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gol.bench.rfs", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--annotations", type=int, default=1_270_000)
    parser.add_argument("--categories", type=int, default=1203)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # force: replace any root handler a library installed at import time (lvis does so)
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)

    image_index, labels = synthetic_annotations(
        num_images=args.images, num_annotations=args.annotations, num_classes=args.categories, seed=args.seed
    )
    order = np.argsort(image_index, kind="stable")
    splits = np.searchsorted(image_index[order], np.arange(1, args.images))
    per_image = [chunk.tolist() for chunk in np.split(labels[order], splits)]

    start = time.perf_counter()
    fast = repeat_factors(
        image_index, labels, num_images=args.images, num_classes=args.categories, threshold=RFS_THRESHOLD
    )
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    slow = repeat_factors_loop(per_image, threshold=RFS_THRESHOLD)
    t_slow = time.perf_counter() - start
    flat = list(zip(image_index.tolist(), labels.tolist(), strict=True))
    start = time.perf_counter()
    grouped: list[list[int]] = [[] for _ in range(args.images)]
    for i, c in flat:
        grouped[i].append(c)
    slow_flat = repeat_factors_loop(grouped, threshold=RFS_THRESHOLD)
    t_slow_flat = time.perf_counter() - start
    start = time.perf_counter()
    sampler = RepeatFactorSampler(dataset=_Arrays(image_index, labels, args.images, args.categories), seed=args.seed)
    sampler.set_epoch(0)
    epoch_len = len(sampler)
    t_epoch = time.perf_counter() - start

    log.info("RFS repeat factors, %d images, %d annotations, %d categories, t=%g",
             args.images, args.annotations, args.categories, RFS_THRESHOLD)
    log.info("  vectorised                           %8.3f s", t_fast)
    log.info("  per-image loop, lists given          %8.3f s  (vectorised is %.1fx faster)", t_slow, t_slow / t_fast)
    log.info("  per-image loop, from annotation list %8.3f s  (vectorised is %.1fx faster)",
             t_slow_flat, t_slow_flat / t_fast)
    same = bool(np.array_equal(fast, slow) and np.array_equal(fast, slow_flat))
    log.info("  max |difference| %.3g (identical: %s)", float(np.abs(fast - slow).max()), same)
    log.info("  sampler build + epoch 0 (stochastic rounding): %.3f s, %d indices, mean r(I) %.3f",
             t_epoch, epoch_len, float(fast.mean()))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
