"""An LVIS-sized generated set: train and val annotation files of LVIS v1's (or v0.5's) size and an image root.

```
<out>/lvis_v1_train.json  lvis_v1_val.json        (v0.5: lvis_v0.5_train.json, lvis_v0.5_val.json)
<out>/coco/train2017/<id>.jpg  coco/val2017/<id>.jpg  -> links to coco/lvis_scale_640x480.jpg
```
It stands in for LVIS where the real files are not at hand, to measure what the data layer costs at LVIS's scale
(startup, memory per process and per loader worker): the files hold what LVIS's hold (categories with r/c/f groups
and counts, images with federated lists, polygons of LVIS-like complexity, see ``lvis_scale_plan`` and
``lvis_scale_geometry``), not anything a model could learn from. Every image is a link to one generated 640x480
JPEG (its records say so). v1 val images lie in both COCO folders, named by their ``coco_url``; v0.5 records spell
``file_name`` as COCO 2014 did (``COCO_train2014_000000xxxxxx.jpg``).

The JSON is written as a stream, annotations chunk by chunk, so memory stays far below the parsed file's; each
file is written under a temporary name and renamed when complete. Links already present are kept, so v1 and v0.5
can share one ``<out>``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.io import write_jpeg

from gol.data.category_stats import image_label_pairs
from gol.data.lvis_scale_geometry import draw_polygons
from gol.data.lvis_scale_plan import VERSION_SIZES, SplitPlan, plan_version

log = logging.getLogger(__name__)

HEIGHT, WIDTH = 480, 640  # the one JPEG every image record points to
IMAGE_FOLDER = "coco"
JPEG_NAME = "lvis_scale_640x480.jpg"
COCO_URL = "http://images.cocodataset.org"
ANNOTATIONS_PER_CHUNK = 50_000
IMAGES_PER_CHUNK = 20_000
V05_VAL2014_SHARE = 0.3  # COCO train2017 holds most of val2014: v0.5 train spells ~30% of its files COCO_val2014_
SEPARATORS = (",", ":")


@dataclass(frozen=True)
class ScaleFiles:
    """What ``write_lvis_scale`` wrote: the annotation files and the image root (``build_lvis``'s arguments)."""

    train_ann: Path
    val_ann: Path
    image_root: Path


def annotation_file_names(version: str) -> tuple[str, str]:
    return f"lvis_{version}_train.json", f"lvis_{version}_val.json"


def write_lvis_scale(out: Path, *, version: str = "v1", scale: float = 1.0, seed: int = 0) -> ScaleFiles:
    """Write the set of ``version`` at ``scale`` (1.0: LVIS's own size) into ``out``; returns its paths."""
    if version not in VERSION_SIZES:
        raise ValueError(f"unknown LVIS version {version!r}; expected one of {sorted(VERSION_SIZES)}")
    if not 0 < scale <= 10:
        raise ValueError(f"--scale must lie in (0, 10], got {scale} (1.0 is LVIS's own size)")
    out = Path(out)
    start = time.perf_counter()
    train, val, groups = plan_version(VERSION_SIZES[version], scale=scale, seed=seed)
    log.info("planned %s x%g in %.1f s", version, scale, time.perf_counter() - start)
    categories = category_entries(train, groups)
    image_root = out / IMAGE_FOLDER
    image_root.mkdir(parents=True, exist_ok=True)
    write_image(image_root / JPEG_NAME, seed=seed)
    paths = [out / name for name in annotation_file_names(version)]
    for split, plan, path in (("train", train, paths[0]), ("val", val, paths[1])):
        split_start = time.perf_counter()
        geometry = np.random.default_rng([seed, 1 if split == "train" else 2])
        images = _image_chunks(plan, version=version, split=split, rng=geometry)
        annotations = _annotation_chunks(plan, rng=geometry)
        write_json_stream(path, head={"info": _info(version, scale, seed), "licenses": _LICENSES,
                                      "categories": categories},
                          lists={"images": images, "annotations": annotations})  # fmt: skip
        link_images(plan, image_root=image_root)
        log.info(
            "%s: %d images, %d annotations, %.1f MB, %.1f s", path, plan.num_images, plan.ann_image.size,
            path.stat().st_size / 1e6, time.perf_counter() - split_start,
        )  # fmt: skip
    log.info("LVIS %s x%g written to %s in %.1f s", version, scale, out, time.perf_counter() - start)
    return ScaleFiles(train_ann=paths[0], val_ann=paths[1], image_root=image_root)


def category_entries(train: SplitPlan, groups: np.ndarray) -> list[dict[str, Any]]:
    """LVIS category entries (both files carry the same, as LVIS's do); counts are the training annotations'."""
    k = groups.size
    _, pair_category = image_label_pairs(train.ann_image, train.ann_category, num_classes=k)
    image_count = np.bincount(pair_category, minlength=k).tolist()  # (K,)
    instance_count = np.bincount(train.ann_category, minlength=k).tolist()  # (K,)
    return [
        {
            "id": i + 1,
            "name": f"category_{i + 1:04d}",
            "synset": f"category_{i + 1:04d}.n.01",
            "synonyms": [f"category_{i + 1:04d}"],
            "def": "a generated category",
            "frequency": str(groups[i]),
            "image_count": image_count[i],
            "instance_count": instance_count[i],
        }
        for i in range(k)
    ]


def write_image(path: Path, *, seed: int) -> None:
    """A 640x480 JPEG of smooth colours with some grain (decoding costs what a photo's does)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 3, HEIGHT // 40, WIDTH // 40), generator=gen)
    smooth = torch.nn.functional.interpolate(coarse, size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False)[0]
    grain = torch.rand((3, HEIGHT, WIDTH), generator=gen)
    pixels = (smooth * 215 + grain * 40).clamp(0, 255).to(torch.uint8)  # (3, H, W)
    write_jpeg(pixels, str(path), quality=90)


def link_images(plan: SplitPlan, *, image_root: Path) -> None:
    """``<image_root>/<train2017|val2017>/<id>.jpg`` -> the one JPEG, for every image of the split."""
    for folder in ("train2017", "val2017"):
        (image_root / folder).mkdir(exist_ok=True)
    target = os.path.join("..", JPEG_NAME)
    for image_id, in_train in zip(plan.image_ids.tolist(), plan.in_train_folder.tolist(), strict=True):
        link = image_root / ("train2017" if in_train else "val2017") / f"{image_id:012d}.jpg"
        with contextlib.suppress(FileExistsError):  # already linked (another version, an earlier run)
            os.symlink(target, link)


_LICENSES = [{"id": i, "name": f"license {i}", "url": ""} for i in range(1, 9)]


def _info(version: str, scale: float, seed: int) -> dict[str, Any]:
    return {"description": f"generated LVIS {version}-format set at scale {scale:g} (seed {seed})", "version": version}


def _image_chunks(plan: SplitPlan, *, version: str, split: str, rng: np.random.Generator) -> Iterator[str]:
    """The ``images`` list as JSON text, chunk by chunk."""
    ids, in_train = plan.image_ids.tolist(), plan.in_train_folder.tolist()
    spelled_val = (rng.random(len(ids)) < V05_VAL2014_SHARE).tolist() if split == "train" else [True] * len(ids)
    for lo in range(0, len(ids), IMAGES_PER_CHUNK):
        records = []
        for i in range(lo, min(lo + IMAGES_PER_CHUNK, len(ids))):
            image_id = ids[i]
            folder = "train2017" if in_train[i] else "val2017"
            record: dict[str, Any] = {
                "id": image_id,
                "license": 1 + image_id % 8,
                "height": HEIGHT,
                "width": WIDTH,
                "coco_url": f"{COCO_URL}/{folder}/{image_id:012d}.jpg",
                "flickr_url": f"http://farm{1 + image_id % 9}.staticflickr.com/{1000 + image_id % 9000}/{image_id}_z.jpg",
                "date_captured": "2013-11-14 16:28:13",
                "neg_category_ids": [c + 1 for c in plan.negatives[i]],
                "not_exhaustive_category_ids": [c + 1 for c in plan.not_exhaustive[i]],
            }
            if version == "v0.5":
                record["file_name"] = f"COCO_{'val' if spelled_val[i] else 'train'}2014_{image_id:012d}.jpg"
            records.append(record)
        yield json.dumps(records, separators=SEPARATORS)[1:-1]


def _annotation_chunks(plan: SplitPlan, *, rng: np.random.Generator) -> Iterator[str]:
    """The ``annotations`` list as JSON text, chunk by chunk (ids 1..M in file order)."""
    total = plan.ann_image.size
    for lo in range(0, total, ANNOTATIONS_PER_CHUNK):
        hi = min(lo + ANNOTATIONS_PER_CHUNK, total)
        shapes = draw_polygons(rng, hi - lo, height=HEIGHT, width=WIDTH)
        image_ids = plan.image_ids[plan.ann_image[lo:hi]].tolist()
        category_ids = (plan.ann_category[lo:hi] + 1).tolist()
        rows = zip(shapes.area.tolist(), shapes.segmentations(), image_ids, shapes.bbox.tolist(), category_ids)
        entries = [
            {"area": area, "id": lo + i + 1, "segmentation": segm, "image_id": image, "bbox": box, "category_id": cat}
            for i, (area, segm, image, box, cat) in enumerate(rows)
        ]
        yield json.dumps(entries, separators=SEPARATORS)[1:-1]


def write_json_stream(path: Path, *, head: dict[str, Any], lists: dict[str, Iterable[str]]) -> None:
    """A JSON object of the ``head`` fields and the ``lists`` given as chunks of comma-joined JSON values, written
    under a temporary name and renamed into place when complete."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write("{")
        for key, value in head.items():
            f.write(f"{json.dumps(key)}:{json.dumps(value, separators=SEPARATORS)},")
        for n, (key, chunks) in enumerate(lists.items()):
            f.write(f"{',' if n else ''}{json.dumps(key)}:[")
            first = True
            for chunk in chunks:
                if chunk:
                    f.write(chunk if first else "," + chunk)
                    first = False
            f.write("]")
        f.write("}")
    os.replace(tmp, path)
