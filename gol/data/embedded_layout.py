"""Planning and drawing one split of the embedded dataset: which categories go in which image, and where.

Shape shorthand: K = categories (0-based index c here; the JSON id is c + 1), N = images of the split.

Exact image counts: each category c gets exactly ``counts[c]`` images (its LVIS ``image_count`` in the training
split), by filling per-image capacities of 1..max_objects distinct categories. A few images then receive a second
instance of one of their categories; in val some of those second instances are left unannotated and the category
is listed in the image's ``not_exhaustive_category_ids``, as LVIS does for incompletely annotated categories.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from gol.data.embedded_render import CategoryLook, background, object_polygon, paint, polygon_mask

URL_BASE = "https://gol.invalid/embedded"  # reserved TLD: the URL only names the split folder and the file
DUPLICATE_PROB = 0.1  # an image gets a second, annotated instance of one of its categories
NOT_EXHAUSTIVE_PROB = 0.15  # val: an image gets a second, unannotated instance (not-exhaustive category)
NEG_PROB = 0.5  # each absent category is listed in neg_category_ids (verified absent) with this probability
VAL_IN_TRAIN_FOLDER_EVERY = 4  # every 4th val image lives in train2017/, as LVIS v1 val images partly do
MIN_OBJECT = 20  # px, side of an object's square at image_size 128 (scaled with image_size)
MAX_OBJECT = 60
MARGIN = 3  # px between objects' squares, so rasterised masks never touch
SIZE_JITTER = 16  # images are image_size +- 16 px per side, in steps of 8
PLACEMENT_TRIES = 100
ASSIGNMENT_TRIES = 20


def frequency_of(image_count: int) -> str:
    """LVIS frequency group of a category with ``image_count`` training images."""
    return "r" if image_count <= 10 else ("c" if image_count <= 100 else "f")


@dataclass
class PlacedObject:
    category: int  # 0-based category index
    x: int
    y: int
    size: int
    annotated: bool


@dataclass
class ImageLayout:
    image_id: int
    height: int
    width: int
    folder: str
    seed: int  # drawing seed of the background, so drawing does not depend on the order of images
    objects: list[PlacedObject] = field(default_factory=list)
    neg_category_ids: list[int] = field(default_factory=list)
    not_exhaustive_category_ids: list[int] = field(default_factory=list)


@dataclass
class SplitLayout:
    images: list[ImageLayout]

    def category_counts(self, num_categories: int) -> tuple[np.ndarray, np.ndarray]:
        """(K,) images and (K,) annotated instances per category."""
        image_count = np.zeros(num_categories, dtype=np.int64)
        instance_count = np.zeros(num_categories, dtype=np.int64)
        for img in self.images:
            cats = [o.category for o in img.objects if o.annotated]
            np.add.at(instance_count, cats, 1)
            image_count[sorted(set(cats))] += 1
        return image_count, instance_count


def _capacities(total: int, num_images: int, max_objects: int, rng: np.random.Generator) -> np.ndarray:
    """(N,) distinct categories per image, each in 1..max_objects, summing to ``total``."""
    if not num_images <= total <= num_images * max_objects:
        raise ValueError(
            f"{total} category-image pairs cannot fill {num_images} images with 1..{max_objects} categories each; "
            "change num_train/num_val or the images per category"
        )
    slots = np.repeat(np.arange(num_images), max_objects - 1)  # spare capacity beyond the first object
    extra = rng.choice(slots.shape[0], size=total - num_images, replace=False)
    return 1 + np.bincount(slots[extra], minlength=num_images)


def assign_categories(
    counts: np.ndarray, *, num_images: int, max_objects: int, rng: np.random.Generator
) -> list[list[int]]:
    """Distinct categories of each image such that category c is in exactly ``counts[c]`` images."""
    for _ in range(ASSIGNMENT_TRIES):
        remaining = _capacities(int(counts.sum()), num_images, max_objects, rng)
        members: list[list[int]] = [[] for _ in range(num_images)]
        for c in np.argsort(-counts, kind="stable"):  # most frequent first, while capacity is spread widely
            available = np.flatnonzero(remaining > 0)
            if available.shape[0] < counts[c]:
                break
            weights = remaining[available] / remaining[available].sum()
            chosen = rng.choice(available, size=int(counts[c]), replace=False, p=weights)
            remaining[chosen] -= 1
            for i in chosen:
                members[i].append(int(c))
        else:
            return members
    raise RuntimeError(
        f"could not spread the category counts over {num_images} images; lower the counts or max_objects"
    )


def _apart(x: int, y: int, size: int, px: int, py: int, ps: int) -> bool:
    """Two squares (x, y, size) and (px, py, ps) are at least MARGIN apart along some axis."""
    return x + size + MARGIN <= px or px + ps + MARGIN <= x or y + size + MARGIN <= py or py + ps + MARGIN <= y


def _place(sizes: list[int], *, height: int, width: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(x, y, size) squares that do not overlap (with a margin), largest first; shrinks objects that do not fit."""
    placed: list[tuple[int, int, int]] = []
    for size in sorted(sizes, reverse=True):
        while True:
            for _ in range(PLACEMENT_TRIES):
                x = int(rng.integers(MARGIN, width - size - MARGIN + 1))
                y = int(rng.integers(MARGIN, height - size - MARGIN + 1))
                if all(_apart(x, y, size, px, py, ps) for px, py, ps in placed):
                    placed.append((x, y, size))
                    break
            else:
                if size <= 8:
                    raise RuntimeError(f"could not place {len(sizes)} objects in a {height}x{width} image")
                size = int(size * 0.85)
                continue
            break
    return placed


def layout_split(
    counts: np.ndarray,
    *,
    num_images: int,
    image_size: int,
    max_objects: int,
    rng: np.random.Generator,
    split: str,
    first_image_id: int,
) -> SplitLayout:
    """Plan every image of a split (categories, extra instances, geometry, neg / not-exhaustive ids)."""
    k = counts.shape[0]
    members = assign_categories(counts, num_images=num_images, max_objects=max_objects, rng=rng)
    scale = image_size / 128.0
    lo_side, hi_side = max(8, int(MIN_OBJECT * scale)), int(MAX_OBJECT * scale)
    steps = np.arange(-SIZE_JITTER, SIZE_JITTER + 1, 8)
    images = []
    for i, cats in enumerate(members):
        objects = [(c, True) for c in cats]
        not_exhaustive: list[int] = []
        if len(objects) < max_objects and rng.random() < DUPLICATE_PROB:
            objects.append((int(rng.choice(cats)), True))
        if split == "val" and len(objects) < max_objects and rng.random() < NOT_EXHAUSTIVE_PROB:
            c = int(rng.choice(cats))
            objects.append((c, False))
            not_exhaustive.append(c + 1)
        height = image_size + int(rng.choice(steps))
        width = image_size + int(rng.choice(steps))
        most = min(hi_side, int(0.85 * np.sqrt(height * width / len(objects))))
        sizes = [int(rng.integers(lo_side, max(lo_side, most) + 1)) for _ in objects]
        squares = _place(sizes, height=height, width=width, rng=rng)
        order = rng.permutation(len(objects))  # which object gets which square
        placed = [PlacedObject(objects[j][0], *squares[n], annotated=objects[j][1]) for n, j in enumerate(order)]
        absent = np.setdiff1d(np.arange(k), np.asarray(cats))
        neg = absent[rng.random(absent.shape[0]) < NEG_PROB]
        in_train_folder = split == "train" or i % VAL_IN_TRAIN_FOLDER_EVERY == VAL_IN_TRAIN_FOLDER_EVERY - 1
        images.append(
            ImageLayout(
                image_id=first_image_id + i,
                height=height,
                width=width,
                folder="train2017" if in_train_folder else "val2017",
                seed=int(rng.integers(2**62)),
                objects=placed,
                neg_category_ids=[int(c) + 1 for c in neg],
                not_exhaustive_category_ids=sorted(not_exhaustive),
            )
        )
    return SplitLayout(images)


def draw_split(layout: SplitLayout, *, looks: list[CategoryLook], root: Path) -> dict[str, Any]:
    """Render every image of ``layout`` as PNG under ``root/<folder>/`` and return its LVIS v1 JSON body."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for img in layout.images:
        rng = np.random.default_rng(img.seed)
        pixels = background(rng, height=img.height, width=img.width)  # (H, W, 3)
        for j, obj in enumerate(img.objects):
            polygon = object_polygon(looks[obj.category].shape, x=obj.x, y=obj.y, size=obj.size)
            mask = polygon_mask(polygon, height=img.height, width=img.width)  # (H, W)
            paint(pixels, mask, looks[obj.category], x0=obj.x, y0=obj.y)
            if obj.annotated:
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                annotations.append(
                    {
                        "id": img.image_id * 10 + j,
                        "image_id": img.image_id,
                        "category_id": obj.category + 1,
                        "segmentation": [polygon],
                        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                        "area": float(mask_utils.area(rle)),
                    }
                )
        file_name = f"{img.image_id:012d}.png"
        Image.fromarray(pixels).save(root / img.folder / file_name, format="PNG", compress_level=1)
        images.append(
            {
                "id": img.image_id,
                "height": img.height,
                "width": img.width,
                "coco_url": f"{URL_BASE}/{img.folder}/{file_name}",
                "license": 1,
                "neg_category_ids": img.neg_category_ids,
                "not_exhaustive_category_ids": img.not_exhaustive_category_ids,
            }
        )
    return {
        "info": {"description": "gol embedded dataset (generated shapes, LVIS v1 format)"},
        "licenses": [{"id": 1, "name": "generated", "url": ""}],
        "images": images,
        "annotations": annotations,
    }
