"""``gol-data``: build the embedded dataset, or summarise the class statistics of an LVIS-format training file.

```
gol-data embedded --out data/embedded [--seed 0] [--num-train 1200] [--num-val 250] ...
gol-data stats data/lvis/lvis_v1_train.json
```
``embedded`` writes (or finds, if already built) ``<out>/<key>/`` and prints that folder. Training configs look in
``${paths.data_root}/embedded``, so ``--out <data_root>/embedded`` pre-builds the dataset a run will use.
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
from gol.data.validation import load_annotation_json, validate_lvis_dict

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
    return parser


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
        if args.command == "embedded":
            _embedded(args)
        else:
            _stats(args)
    except (ValueError, FileNotFoundError) as e:
        log.error("%s", e)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
