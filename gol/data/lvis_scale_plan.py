"""Who holds what in an LVIS-sized generated set: images, categories, (image, category) pairs, instance counts and the
federated lists, as numpy arrays (the geometry of each instance is drawn later, chunk by chunk).

Shape shorthand: N = images of a split, K = categories, P = (image, category) pairs with at least one instance,
M = annotations. Image and category *indices* (0-based) are used throughout; ids are attached when written.

Sizes are LVIS's own (v1: 100,170 train / 19,809 val images, 1.27M / 245k annotations, 1203 categories of which
337 rare, 461 common, 405 frequent; v0.5: 57,263 / 5,000 images, 694k / 51k annotations, 1230 categories). The r/c/f
group of a category is the one of its full-scale training image count (LVIS's rule: <= 10 rare, 11-100 common,
> 100 frequent); at ``scale < 1`` the counts shrink with the images and the groups stay those of the full set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gol.data.embedded_layout import frequency_of

RARE_MAX, COMMON_MAX = 10, 100  # LVIS frequency thresholds (training images per category)
COCO_MAX_IMAGE_ID = 581_929  # COCO 2017 image ids lie in 1..581,929
CATEGORIES_PER_IMAGE = 3.4  # (image, category) pairs per annotated training image (LVIS-like)
TOP_CATEGORY_SHARE = 0.2  # the most frequent category is in this share of the annotated images
NOT_EXHAUSTIVE_RATE = 0.08  # share of an image's positive categories marked not exhaustively annotated
NEGATIVES_PER_IMAGE = 4.0  # mean number of verified-absent categories per image


@dataclass(frozen=True)
class SplitSize:
    images: int
    annotations: int
    unannotated: int  # images without any annotation (kept in the file, dropped from training)


@dataclass(frozen=True)
class VersionSize:
    """The full-scale shape of one LVIS version."""

    train: SplitSize
    val: SplitSize
    groups: tuple[int, int, int]  # categories per frequency group (r, c, f)
    val_in_train_folder: float  # share of val images whose file lies in COCO train2017/


VERSION_SIZES = {
    "v1": VersionSize(
        train=SplitSize(100_170, 1_270_141, 782),  # 99,388 annotated training images
        val=SplitSize(19_809, 244_707, 100),
        groups=(337, 461, 405),
        val_in_train_folder=0.75,  # LVIS v1 val draws from COCO train2017 and val2017
    ),
    "v0.5": VersionSize(
        train=SplitSize(57_263, 693_958, 450),
        val=SplitSize(5_000, 50_763, 25),
        groups=(454, 461, 315),
        val_in_train_folder=0.0,  # LVIS v0.5 val is a subset of COCO val2017
    ),
}


@dataclass(frozen=True)
class SplitPlan:
    """One split: its images and, per annotation, the image and category it belongs to (in file order)."""

    image_ids: np.ndarray  # (N,) int64, distinct
    in_train_folder: np.ndarray  # (N,) bool, file in COCO train2017/ (else val2017/)
    ann_image: np.ndarray  # (M,) int64 image index; annotations are ordered by category, then image
    ann_category: np.ndarray  # (M,) int64 category index
    negatives: list[list[int]]  # per image, category indices verified absent
    not_exhaustive: list[list[int]]  # per image, positive category indices not exhaustively annotated

    @property
    def num_images(self) -> int:
        return int(self.image_ids.size)


def scaled(value: int, scale: float) -> int:
    return max(1, round(value * scale))


def full_image_counts(size: VersionSize, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(K,) full-scale training images per category and (K,) its group ("r"/"c"/"f"), categories shuffled.

    Rare counts spread over 1..10, common over 11..100 (log-uniform), frequent on a curve from 101 up to
    ``TOP_CATEGORY_SHARE`` of the images, bent so that all pairs together give ``CATEGORIES_PER_IMAGE``.
    """
    n_r, n_c, n_f = size.groups
    annotated = size.train.images - size.train.unannotated
    rare = np.rint(np.geomspace(1, RARE_MAX, n_r)).astype(np.int64)
    common = np.rint(np.geomspace(RARE_MAX + 1, COMMON_MAX, n_c)).astype(np.int64)
    frequent_total = CATEGORIES_PER_IMAGE * annotated - rare.sum() - common.sum()
    frequent = _frequent_curve(n_f, lo=COMMON_MAX + 1, hi=TOP_CATEGORY_SHARE * annotated, total=frequent_total)
    counts = np.concatenate([rare, common, frequent])  # (K,)
    order = rng.permutation(counts.size)
    counts = counts[order]
    return counts, np.array([frequency_of(int(c)) for c in counts])


def _frequent_curve(n: int, *, lo: float, hi: float, total: float) -> np.ndarray:
    """(n,) counts lo * (hi / lo) ** (q ** beta) over quantiles q, with beta bisected so they sum to ``total``."""
    q = (np.arange(n) + 0.5) / n
    lo_beta, hi_beta = 0.05, 50.0
    for _ in range(60):  # the sum falls as beta grows
        beta = np.sqrt(lo_beta * hi_beta)
        if (lo * (hi / lo) ** (q**beta)).sum() > total:
            lo_beta = beta
        else:
            hi_beta = beta
    return np.floor(lo * (hi / lo) ** (q**beta)).astype(np.int64)


def draw_pairs(
    target: np.ndarray, *, annotated: int, rng: np.random.Generator, fill_with: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(P,) image index and (P,) category index of distinct pairs: category k in ``target[k]`` (K,) annotated images
    (zero allowed).

    Images differ in how many categories they hold (weights drawn log-normal, Gumbel-top-k sampling without
    replacement); an annotated image that drew no category gets one of the ``fill_with`` categories (frequent ones,
    so no group changes).
    """
    log_w = rng.normal(0.0, 0.8, size=annotated)  # (N_annotated,) image richness
    images, cats = [], []
    for k, count in enumerate(np.minimum(target, annotated).tolist()):
        if count == 0:
            continue
        keys = log_w - np.log(-np.log(rng.random(annotated)))  # (N_annotated,) Gumbel-perturbed log weights
        chosen = np.argpartition(-keys, count - 1)[:count].copy() if count < annotated else np.arange(annotated)
        images.append(chosen)  # a copy: a view would keep the whole (N_annotated,) partition alive
        cats.append(np.full(count, k, dtype=np.int64))
    image_index, category = np.concatenate(images), np.concatenate(cats)  # (P,)
    empty = np.flatnonzero(np.bincount(image_index, minlength=annotated) == 0)
    image_index = np.concatenate([image_index, empty])
    category = np.concatenate([category, rng.choice(fill_with, size=empty.size)])
    return image_index.astype(np.int64), category


def instances_per_pair(
    categories: np.ndarray, groups: np.ndarray, *, annotations: int, rng: np.random.Generator
) -> np.ndarray:
    """(P,) instances of each pair: one each, plus the rest of ``annotations`` spread with heavy-tailed weights
    (frequent categories tend to have more instances per image)."""
    p = categories.size
    extra = max(annotations - p, 0)
    factor = np.select([groups[categories] == "r", groups[categories] == "c"], [0.5, 0.75], 1.0)  # (P,)
    weight = rng.lognormal(0.0, 1.0, size=p) * factor
    return 1 + np.bincount(rng.choice(p, size=extra, p=weight / weight.sum()), minlength=p)


def federated_lists(
    pair_image: np.ndarray, pair_category: np.ndarray, *, num_images: int, num_categories: int, rng: np.random.Generator
) -> tuple[list[list[int]], list[list[int]]]:
    """Per image, (negative categories, not-exhaustive categories): negatives are drawn among the categories the
    image does not hold; not-exhaustive ones among those it holds."""
    k = num_categories
    positive_keys = pair_image * k + pair_category  # (P,)
    marked = rng.random(pair_image.size) < NOT_EXHAUSTIVE_RATE
    not_exhaustive = _per_image(np.sort(positive_keys[marked]), num_images=num_images, num_categories=k)
    draws = rng.poisson(NEGATIVES_PER_IMAGE, size=num_images)  # (N,)
    neg_keys = np.repeat(np.arange(num_images), draws) * k + rng.integers(0, k, size=int(draws.sum()))
    neg_keys = np.unique(neg_keys[~np.isin(neg_keys, positive_keys)])
    return _per_image(neg_keys, num_images=num_images, num_categories=k), not_exhaustive


def _per_image(sorted_keys: np.ndarray, *, num_images: int, num_categories: int) -> list[list[int]]:
    """Sorted image * K + category keys -> per image, its list of category indices."""
    bounds = np.searchsorted(sorted_keys, np.arange(num_images + 1) * num_categories).tolist()
    flat = (sorted_keys % num_categories).tolist()
    return [flat[bounds[i] : bounds[i + 1]] for i in range(num_images)]


def plan_split(
    split: SplitSize,
    target: np.ndarray,
    groups: np.ndarray,
    *,
    scale: float,
    image_ids: np.ndarray,
    in_train_folder: np.ndarray,
    rng: np.random.Generator,
) -> SplitPlan:
    """The plan of one split whose categories should appear in ``target`` (K,) annotated images each.

    The images ``image_ids`` come in file order; the first ``unannotated`` (scaled) of them get no annotation.
    """
    n = image_ids.size
    unannotated = min(round(split.unannotated * scale), n - 1)
    annotated = n - unannotated
    frequent = np.flatnonzero(groups == "f")
    pair_image, pair_category = draw_pairs(target, annotated=annotated, rng=rng, fill_with=frequent)
    pair_image = pair_image + unannotated
    counts = instances_per_pair(pair_category, groups, annotations=scaled(split.annotations, scale), rng=rng)
    order = np.lexsort((pair_image, pair_category))  # file order: by category, then image
    negatives, not_exhaustive = federated_lists(
        pair_image, pair_category, num_images=n, num_categories=groups.size, rng=rng
    )
    return SplitPlan(
        image_ids=image_ids,
        in_train_folder=in_train_folder,
        ann_image=np.repeat(pair_image[order], counts[order]),
        ann_category=np.repeat(pair_category[order], counts[order]),
        negatives=negatives,
        not_exhaustive=not_exhaustive,
    )


def plan_version(size: VersionSize, *, scale: float, seed: int) -> tuple[SplitPlan, SplitPlan, np.ndarray]:
    """(train plan, val plan, (K,) frequency group per category index) of one version at ``scale``."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    full, groups = full_image_counts(size, rng)
    n_train, n_val = scaled(size.train.images, scale), scaled(size.val.images, scale)
    n_train, n_val = max(n_train, 2), max(n_val, 2)  # at least one annotated image per split
    id_range = max(COCO_MAX_IMAGE_ID, 2 * (n_train + n_val))
    ids = rng.choice(id_range, size=n_train + n_val, replace=False).astype(np.int64) + 1
    annotated_train = n_train - min(round(size.train.unannotated * scale), n_train - 1)
    train_target = np.minimum(np.maximum(np.rint(full * scale), 1).astype(np.int64), annotated_train)
    train = plan_split(
        size.train, train_target, groups, scale=scale, image_ids=ids[:n_train],
        in_train_folder=np.ones(n_train, dtype=bool), rng=rng,
    )  # fmt: skip
    # Val: the training proportions with stochastic rounding, so some rare categories have val images and some not.
    ratio = (size.val.images - size.val.unannotated) / (size.train.images - size.train.unannotated)
    annotated_val = n_val - min(round(size.val.unannotated * scale), n_val - 1)
    val_target = np.floor(full * scale * ratio + rng.random(full.size)).astype(np.int64)
    val_target = np.minimum(val_target, annotated_val)
    val = plan_split(
        size.val, val_target, groups, scale=scale, image_ids=ids[n_train:],
        in_train_folder=rng.random(n_val) < size.val_in_train_folder, rng=rng,
    )  # fmt: skip
    return train, val, groups
