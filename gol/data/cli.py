"""``gol-data``: build the embedded dataset, summarise an LVIS-format training file, or write an evaluation set.

```
gol-data embedded --out data/embedded [--seed 0] [--num-train 1200] [--num-val 250] ...
gol-data stats data/lvis/lvis_v1_train.json
gol-data eval-set --out evalset [--images 200] [--categories 100] [--seed 0]
gol-data lvis-scale --out DIR [--version v1|v0.5] [--scale 1.0] [--seed 0]
```
``embedded`` writes (or finds, if already built) ``<out>/<key>/`` and prints that folder. Training configs look in
``${paths.data_root}/embedded``, so ``--out <data_root>/embedded`` pre-builds the dataset a run will use.
``eval-set`` writes a generated LVIS-format ``annotations.json`` and a matching ``results.json`` (boxes and RLE
masks, up to 330 detections per image, every LVIS evaluation rule exercised) to try ``gol-eval`` on.
``lvis-scale`` writes annotation files of LVIS's own size (``--scale 1.0``; v1: 100k train images, 1.27M
annotations) and an image root of links to one JPEG (see ``gol.data.lvis_scale``), and prints the train file, the val
file and the image root: ``dataset.train_ann``, ``dataset.val_ann`` and ``dataset.image_root`` of ``dataset=lvis_v1``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gol.data.category_stats import category_stats, compare_with_json_counts
from gol.data.embedded import EmbeddedParams, ensure_embedded
from gol.data.entries import validate_lvis_dict
from gol.data.validation import load_annotation_json

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gol-data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    emb = sub.add_parser("embedded", help="generate (or find) the embedded dataset and print its folder")
    emb.add_argument("--out", type=Path, required=True, help="cache root; the dataset lands in <out>/<key>/")
    for f in dataclasses.fields(EmbeddedParams):
        emb.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=f.default, help=f"default {f.default}")
    st = sub.add_parser("stats", help="r/c/f groups and counts of an LVIS-format training annotation file")
    st.add_argument("annotation_file", type=Path)
    ev = sub.add_parser("eval-set", help="write a generated LVIS-format annotation file and results file")
    ev.add_argument("--out", type=Path, required=True, help="folder for annotations.json and results.json")
    ev.add_argument("--images", type=int, default=200)
    ev.add_argument("--categories", type=int, default=100)
    ev.add_argument("--seed", type=int, default=0)
    sc = sub.add_parser("lvis-scale", help="write LVIS-sized annotation files and an image root of links to one JPEG")
    sc.add_argument("--out", type=Path, required=True, help="folder for the annotation files and coco/")
    sc.add_argument("--version", choices=["v1", "v0.5"], default="v1")
    sc.add_argument("--scale", type=float, default=1.0, help="share of LVIS's size (default 1.0: full size)")
    sc.add_argument("--seed", type=int, default=0)
    return parser


def _eval_set(args: argparse.Namespace) -> None:
    from gol.data.synthetic_lvis import SyntheticSpec, make_lvis_set

    if args.images < 1 or args.categories < 1:
        raise ValueError(f"--images and --categories must be at least 1, got {args.images} and {args.categories}")
    spec = SyntheticSpec(
        num_images=args.images, num_categories=args.categories, dets_per_image=(200, 330), image_size=(120, 480),
        seed=args.seed,
    )  # fmt: skip
    gt, results = make_lvis_set(spec)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, content in (("annotations.json", gt), ("results.json", results)):
        (args.out / name).write_text(json.dumps(content), encoding="utf-8")
    log.info("%d images, %d categories, %d detections", len(gt["images"]), len(gt["categories"]), len(results))
    sys.stdout.write(f"{args.out / 'annotations.json'}\n{args.out / 'results.json'}\n")


def _lvis_scale(args: argparse.Namespace) -> None:
    from gol.data.lvis_scale import write_lvis_scale

    files = write_lvis_scale(args.out, version=args.version, scale=args.scale, seed=args.seed)
    sys.stdout.write(f"{files.train_ann}\n{files.val_ann}\n{files.image_root}\n")


def _embedded(args: argparse.Namespace) -> None:
    params = EmbeddedParams(**{f.name: getattr(args, f.name) for f in dataclasses.fields(EmbeddedParams)})
    start = time.perf_counter()
    folder = ensure_embedded(args.out, params)
    log.info("embedded dataset ready in %.2f s", time.perf_counter() - start)
    sys.stdout.write(f"{folder}\n")


def _stats(args: argparse.Namespace) -> None:
    data = load_annotation_json(args.annotation_file)
    validate_lvis_dict(data, source=args.annotation_file, federated=False)
    cats = sorted(data["categories"], key=lambda c: c["id"])
    ids = np.array([c["id"] for c in cats], dtype=np.int64)
    image_ids = np.array(sorted({a["image_id"] for a in data["annotations"]}), dtype=np.int64)
    ann = data["annotations"]
    stats = category_stats(
        category_ids=ids.tolist(),
        names=[c["name"] for c in cats],
        frequency=[c["frequency"] for c in cats],
        image_index=np.searchsorted(image_ids, np.array([a["image_id"] for a in ann], dtype=np.int64)),
        labels=np.searchsorted(ids, np.array([a["category_id"] for a in ann], dtype=np.int64)) + 1,
        num_images=max(len(image_ids), 1),
    )
    disagree = compare_with_json_counts(stats, cats, source=str(args.annotation_file))
    summary = {
        "categories": stats.num_classes,
        "annotated_images": stats.num_images,
        "images": len(data["images"]),
        "annotations": len(ann),
        "groups": {g: int(stats.group_mask(g).sum()) for g in ("r", "c", "f")},
        "json_count_disagreements": disagree,
    }
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    # force: replace any root handler a library installed at import time (lvis does so)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    args = _parser().parse_args(argv)
    try:
        {"embedded": _embedded, "stats": _stats, "eval-set": _eval_set, "lvis-scale": _lvis_scale}[args.command](args)
    except (ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
