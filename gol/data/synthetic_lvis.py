"""Generated LVIS-format ground truth and detections, to test and benchmark evaluation against lvis-api.

The sets exercise every part of LVIS's semantics: categories across r/c/f (some never annotated, some only
in negative lists), non-contiguous and unsorted ids, ``neg_category_ids`` and ``not_exhaustive_category_ids``,
polygon (one or two parts), uncompressed and compressed RLE masks, duplicated instances (IoU ties),
zero-area annotations and detections, tied scores, and more detections per image than the cap of 300.

Shape shorthand: n = detections of one image, g = annotations of one image. Masks are octagons cut from boxes,
so a detection's box area differs from its mask area (what makes dropping ``bbox`` from segm results matter).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

FREQUENCIES = ("r", "c", "f")  # LVIS frequency groups: rare, common, frequent


@dataclass(frozen=True)
class SyntheticSpec:
    """Size and flavour of a generated set."""

    num_images: int = 8
    num_categories: int = 12
    dets_per_image: tuple[int, int] = (20, 60)  # inclusive range; above 300 exercises the per-image cap
    image_size: tuple[int, int] = (48, 160)  # side lengths (pixels), inclusive range
    max_instances: int = 4  # per positive category and image
    score_decimals: int | None = 2  # rounding creates tied scores; None keeps them continuous
    ignore_flags: bool = False  # mark some annotations with lvis-api's optional "ignore": 1
    seed: int = 0


def make_lvis_set(spec: SyntheticSpec) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A generated (LVIS annotation dict, list of LVIS result dicts) pair."""
    rng = np.random.default_rng(spec.seed)
    k = spec.num_categories
    cat_ids = np.sort(rng.choice(np.arange(1, 3 * k + 2), size=k, replace=False))
    freq = np.array([FREQUENCIES[i % 3] for i in range(k)])
    rng.shuffle(freq)
    # Frequent categories appear in more images; the last ~10% are never annotated (empty categories).
    weight = np.where(freq == "f", 6.0, np.where(freq == "c", 2.0, 0.5))
    weight[rng.permutation(k)[: (max(1, k // 10) if k >= 4 else 0)]] = 0.0
    weight /= weight.sum()
    most_positive = min(5, int(np.count_nonzero(weight)))
    image_ids = rng.choice(np.arange(1, 10 * spec.num_images + 1), size=spec.num_images, replace=False)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for image_id in image_ids.tolist():
        h, w = (int(v) for v in rng.integers(spec.image_size[0], spec.image_size[1] + 1, size=2))
        pos = rng.choice(k, size=int(rng.integers(1, most_positive + 1)), replace=False, p=weight)
        others = np.setdiff1d(np.arange(k), pos)
        neg = rng.choice(others, size=min(others.size, int(rng.integers(0, 7))), replace=False)
        not_exhaustive = np.concatenate([pos[rng.random(pos.size) < 0.3], neg[rng.random(neg.size) < 0.1]])
        image_anns = _annotations(rng, spec, image_id, h, w, pos, cat_ids, first_id=len(annotations) + 1)
        annotations += image_anns
        images.append(
            {
                "id": image_id,
                "height": h,
                "width": w,
                "file_name": f"{image_id:012d}.jpg",
                "neg_category_ids": cat_ids[neg].tolist(),
                "not_exhaustive_category_ids": cat_ids[not_exhaustive].tolist(),
            }
        )
        results += _detections(rng, spec, image_id, h, w, image_anns, pos, neg, not_exhaustive, cat_ids)
    order = rng.permutation(len(annotations))  # file order need not follow ids or images
    annotations = [annotations[i] for i in order]
    images = [images[i] for i in rng.permutation(len(images))]
    per_cat: dict[int, set[int]] = {int(c): set() for c in cat_ids}
    instances = dict.fromkeys(per_cat, 0)
    for a in annotations:
        per_cat[a["category_id"]].add(a["image_id"])
        instances[a["category_id"]] += 1
    categories = [
        {
            "id": int(c),
            "name": f"category_{int(c)}",
            "synset": f"category_{int(c)}.n.01",
            "frequency": str(f),
            "image_count": len(per_cat[int(c)]),
            "instance_count": instances[int(c)],
        }
        for c, f in zip(cat_ids, freq)
    ]
    gt = {
        "info": {"description": "generated LVIS-format set"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories[::-1],
    }
    return gt, results


def _octagons(boxes: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """(n, 4) xywh boxes, (n,) corner cut fractions -> (n, 16) octagon polygons [x0, y0, x1, y1, ...]."""
    x, y, w, h = boxes.T
    cw, ch = cut * w, cut * h
    xs = np.stack([x + cw, x + w - cw, x + w, x + w, x + w - cw, x + cw, x, x], axis=1)  # (n, 8)
    ys = np.stack([y, y, y + ch, y + h - ch, y + h, y + h, y + h - ch, y + ch], axis=1)  # (n, 8)
    return np.stack([xs, ys], axis=2).reshape(-1, 16)  # (n, 16)


def _random_boxes(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """(n, 4) xywh boxes inside an h x w image, sizes log-uniform so small, medium and large all occur."""
    side = np.exp(rng.uniform(np.log(3), np.log(max(h, w)), size=(n, 2)))  # (n, 2)
    bw, bh = np.minimum(side[:, 0], w - 1), np.minimum(side[:, 1] * rng.uniform(0.5, 1.5, n), h - 1)
    x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    return np.round(np.stack([x, y, bw, bh], axis=1), 2)  # (n, 4)


def _annotations(
    rng: np.random.Generator,
    spec: SyntheticSpec,
    image_id: int,
    h: int,
    w: int,
    pos: np.ndarray,
    cat_ids: np.ndarray,
    first_id: int,
) -> list[dict[str, Any]]:
    cats = np.repeat(pos, rng.integers(1, spec.max_instances + 1, size=pos.size))  # (g,)
    boxes = _random_boxes(rng, cats.size, h, w)  # (g, 4)
    dup = rng.random(cats.size) < 0.1  # duplicated instances: identical IoU with every detection
    cats, boxes = np.concatenate([cats, cats[dup]]), np.concatenate([boxes, boxes[dup]])
    polys = _octagons(boxes, rng.uniform(0.0, 0.3, cats.size)).tolist()
    anns = []
    for i, (cat, poly) in enumerate(zip(cats.tolist(), polys)):
        segm: Any = [poly]
        if rng.random() < 0.1:  # a second part
            x, y, bw, bh = boxes[i]
            segm = [poly, [x, y, x + bw / 4, y, x, y + bh / 4]]
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
        style = rng.random()
        if style < 0.1:
            segm = {"size": [h, w], "counts": _uncompressed_counts(_decode(rle))}
        elif style < 0.2:
            segm = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
        area = float(mask_utils.area(rle))
        if rng.random() < 0.02:
            area = 0.0  # lvis-api drops annotations with area 0
        ann = {
            "id": first_id + i,
            "image_id": image_id,
            "category_id": int(cat_ids[cat]),
            "bbox": mask_utils.toBbox(rle).tolist(),
            "area": area,
            "segmentation": segm,
        }
        if spec.ignore_flags and rng.random() < 0.1:
            ann["ignore"] = 1
        anns.append(ann)
    return anns


def _decode(rle: dict[str, Any]) -> np.ndarray:
    with warnings.catch_warnings():  # pycocotools' decode trips a NumPy 2 copy-keyword DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle)


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    """Column-major run lengths of a binary mask, starting with a (possibly empty) run of zeros."""
    flat = mask.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    return ([0, *counts]) if flat[0] == 1 else counts


def _detections(
    rng: np.random.Generator,
    spec: SyntheticSpec,
    image_id: int,
    h: int,
    w: int,
    anns: list[dict[str, Any]],
    pos: np.ndarray,
    neg: np.ndarray,
    not_exhaustive: np.ndarray,
    cat_ids: np.ndarray,
) -> list[dict[str, Any]]:
    n = int(rng.integers(spec.dets_per_image[0], spec.dets_per_image[1] + 1))
    kind = rng.choice(5, size=n, p=[0.4, 0.05, 0.15, 0.1, 0.3])  # near GT, exact GT, neg, not-exhaustive, any
    k = cat_ids.size
    cats = rng.integers(0, k, size=n)
    boxes = _random_boxes(rng, n, h, w)  # (n, 4)
    index = {int(c): i for i, c in enumerate(cat_ids)}
    gt_boxes = np.array([a["bbox"] for a in anns]).reshape(-1, 4)
    gt_cats = np.array([index[a["category_id"]] for a in anns], dtype=np.int64)
    near = (kind <= 1) & (gt_cats.size > 0)
    src = rng.integers(0, max(gt_cats.size, 1), size=n)
    if gt_cats.size:
        jitter = np.where(kind[:, None] == 1, 0.0, rng.normal(0.0, 0.12, size=(n, 4)))  # (n, 4)
        scale = gt_boxes[src][:, [2, 3, 2, 3]]  # (n, 4)
        moved = gt_boxes[src] + jitter * scale
        boxes = np.where(near[:, None], moved, boxes)
        cats = np.where(near, np.where(rng.random(n) < 0.9, gt_cats[src], rng.choice(pos, size=n)), cats)
    if neg.size:
        cats = np.where(kind == 2, rng.choice(neg, size=n), cats)
    if not_exhaustive.size:
        cats = np.where(kind == 3, rng.choice(not_exhaustive, size=n), cats)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], 0.5)
    boxes[rng.random(n) < 0.01, 2] = 0.0  # zero-area detections are dropped by lvis-api
    polys = _octagons(boxes, rng.uniform(0.0, 0.3, n)).tolist()
    rles = mask_utils.frPyObjects(polys, h, w) if n else []
    scores = rng.random(n)
    if spec.score_decimals is not None:
        scores = np.round(scores, spec.score_decimals)
    return [
        {
            "image_id": image_id,
            "category_id": int(cat_ids[c]),
            "bbox": b,
            "score": s,
            "segmentation": {"size": [h, w], "counts": r["counts"].decode("ascii")},
        }
        for c, b, s, r in zip(cats.tolist(), np.round(boxes, 2).tolist(), scores.tolist(), rles)
    ]
