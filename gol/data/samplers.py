"""Epoch-based index samplers: uniform random order and Repeat Factor Sampling (RFS).

Shape shorthand: N = images in the training split, M = annotations, K = foreground categories (labels 1..K).

Every sampler is built as ``factory(dataset=train, seed=seed)`` (a Hydra partial) and the order of epoch ``e`` is a
pure function of ``(seed, e)``: the engine resumes mid-epoch by calling ``set_epoch(e)`` again and skipping the
indices already consumed. Epoch seeds are mixed with ``numpy.random.SeedSequence([seed, epoch])``.

RFS (LVIS paper, App. B.2): f(c) = fraction of training images containing c, r(c) = max(1, sqrt(t / f(c))),
r(I) = max over the categories c in I of r(c) (1 for an image without annotations). Two roundings of r(I):
- "stochastic" (detectron2 ``RepeatFactorTrainingSampler``): floor(r) + Bernoulli(frac(r)) copies, redrawn each
  epoch, so the epoch length varies around sum(r);
- "ceil" (mmdetection ``ClassBalancedDataset``): ceil(r) copies, fixed, so epochs are longer than detectron2's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Literal, Protocol

import numpy as np
from torch.utils.data import Sampler

from gol.data.category_stats import image_label_pairs

Rounding = Literal["stochastic", "ceil"]
ROUNDINGS: tuple[str, ...] = ("stochastic", "ceil")
log = logging.getLogger(__name__)

RFS_THRESHOLD = 1e-3  # t for LVIS, LVIS paper App. B.2; used by detectron2 and mmdet LVIS configs


class SizedDataset(Protocol):
    def __len__(self) -> int: ...


class CategoryDataset(Protocol):
    """What RFS needs from a dataset: its length, K and the (image index, label) of every annotation."""

    @property
    def num_classes(self) -> int: ...

    def __len__(self) -> int: ...

    def occurrences(self) -> tuple[np.ndarray, np.ndarray]: ...


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch, a pure function of (seed, epoch)."""
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be non-negative, got seed={seed}, epoch={epoch}")
    return np.random.default_rng(np.random.SeedSequence([seed, epoch]))


def category_repeat_factors(image_count: np.ndarray, *, num_images: int, threshold: float) -> np.ndarray:
    """(K,) r(c) = max(1, sqrt(t / f(c))) with f(c) = image_count / num_images; 1 for categories with no images."""
    f = image_count.astype(np.float64) / num_images  # (K,)
    with np.errstate(divide="ignore", invalid="ignore"):  # categories without images are masked below
        r = np.sqrt(threshold / f)
    return np.where(image_count > 0, np.maximum(1.0, r), 1.0)


def repeat_factors(
    image_index: np.ndarray, labels: np.ndarray, *, num_images: int, num_classes: int, threshold: float
) -> np.ndarray:
    """(N,) float64 image repeat factors r(I) from M annotations, vectorised (no per-image Python loop).

    Args:
        image_index: (M,) int, image in [0, num_images) of each annotation.
        labels: (M,) int, label in 1..K of each annotation.
        num_images: N.
        num_classes: K.
        threshold: t (0 gives 1 everywhere, i.e. no oversampling).
    """
    if threshold < 0:
        raise ValueError(f"RFS threshold must be non-negative, got {threshold}")
    images, cats = image_label_pairs(np.asarray(image_index), np.asarray(labels), num_classes=num_classes)  # (P,)
    image_count = np.bincount(cats, minlength=num_classes + 1)  # (K + 1,) column 0 unused
    r_cat = category_repeat_factors(image_count, num_images=num_images, threshold=threshold)  # (K + 1,)
    r_img = np.ones(num_images, dtype=np.float64)  # (N,)
    np.maximum.at(r_img, images, r_cat[cats])
    return r_img


class RandomSampler(Sampler[int]):
    """Each epoch a fresh permutation of the N training images."""

    def __init__(self, *, dataset: SizedDataset, seed: int) -> None:
        self.num_images = len(dataset)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """(N,) this epoch's order."""
        return epoch_rng(self.seed, self.epoch).permutation(self.num_images)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_images


class RepeatFactorSampler(Sampler[int]):
    """Repeat Factor Sampling with threshold ``threshold`` and an explicit ``rounding`` mode (see module docstring).

    Each epoch holds round(r(I)) copies of every image I, shuffled; ``len`` is this epoch's length (it varies per
    epoch with "stochastic" rounding, so call ``set_epoch`` before ``len``).
    """

    def __init__(
        self,
        *,
        dataset: CategoryDataset,
        seed: int,
        threshold: float = RFS_THRESHOLD,
        rounding: Rounding = "stochastic",
    ) -> None:
        if rounding not in ROUNDINGS:
            raise ValueError(f"unknown RFS rounding {rounding!r}; expected one of {list(ROUNDINGS)}")
        image_index, labels = dataset.occurrences()
        self.repeat_factors = repeat_factors(
            image_index, labels, num_images=len(dataset), num_classes=dataset.num_classes, threshold=threshold
        )  # (N,)
        self.threshold = float(threshold)
        self.rounding: Rounding = rounding
        if threshold > 0 and bool((self.repeat_factors == 1.0).all()):
            log.warning(
                "RFS threshold %g repeats no image (every category is in more than a fraction %g of the %d images); "
                "raise sampler.threshold for a dataset this small",
                threshold,
                threshold,
                len(dataset),
            )
        self.seed = int(seed)
        self.epoch = 0
        self._cache: tuple[int, np.ndarray] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def copies(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """(N,) int64 copies of each image this epoch (the stochastic mode draws from ``rng``)."""
        if self.rounding == "ceil":
            return np.ceil(self.repeat_factors).astype(np.int64)
        if rng is None:
            raise ValueError("stochastic rounding needs a generator")
        whole = np.floor(self.repeat_factors)
        return (whole + (rng.random(whole.shape[0]) < self.repeat_factors - whole)).astype(np.int64)

    def indices(self) -> np.ndarray:
        """This epoch's image indices, a pure function of (seed, epoch)."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = epoch_rng(self.seed, self.epoch)
        repeated = np.repeat(np.arange(self.repeat_factors.shape[0]), self.copies(rng))
        out = repeated[rng.permutation(repeated.shape[0])]
        self._cache = (self.epoch, out)
        return out

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return int(self.indices().shape[0])

    def expected_length(self) -> float:
        """Expected epoch length (sum of r(I) for stochastic rounding, sum of ceil(r(I)) for ceil)."""
        if self.rounding == "ceil":
            return float(np.ceil(self.repeat_factors).sum())
        return float(self.repeat_factors.sum())
