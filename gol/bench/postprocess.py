"""Benchmark: test-time mask post-processing per image (paste, > 0.5, RLE), full-image masks against box-local ones.

    python -m gol.bench postprocess [--size smoke|full] [--repeats N] [--threads T] [--json PATH]

Each image's detections go from (N, 1, 28, 28) mask probabilities and (N, 4) boxes to compressed RLEs. Three ways,
timed side by side on the same detections, interleaved, after a warm-up (median seconds per image):

- ``matmul``: the full-image path as evaluation ran it before box-local pasting: each mask pasted into an (H, W)
  image by two batched matrix products (``Wy @ P @ Wx^T``, kept here as the reference), then
  ``gol.evaluation.convert.encode_masks`` (``> 0.5``, a Fortran-ordered uint8 copy, pycocotools' ``encode``);
- ``image``: the same with ``gol.models.paste.paste_masks``, the detector's torchvision-style output;
- ``box``: ``gol.evaluation.convert.encode_box_masks``, each mask pasted, thresholded and run-length encoded
  inside its box only, which evaluation now runs.

The report gives the ratios to ``box``, checks that ``box`` gives the RLE bytes of ``image`` and counts the masks
where ``matmul``'s differ (pixels within float32 rounding of 0.5: the matrix products round differently). It also
gives the bytes ``Detections.segmentations`` holds per detection, as ``RLEs`` and as the tuple of pycocotools dicts
it was before (tracemalloc over at least 10k of the case's masks).

Masks are smooth random blobs (bilinear upsampling of 4 x 4 logits), boxes random inside the image. Cases:
``smoke`` (30 detections on 60 x 80); ``full`` adds the target (300 detections on 480 x 640) and LVIS's test size
(300 on 800 x 1066).
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.roi_heads import expand_boxes

from gol.bench._report import add_json_option, write_json
from gol.bench.inference import random_detections
from gol.evaluation.convert import encode_box_masks, encode_masks
from gol.evaluation.rles import RLEs
from gol.models.paste import MASK_PADDING, paste_masks

MEMORY_MASKS = 10_000  # masks behind the held-bytes figures, at least


@dataclass(frozen=True)
class Case:
    detections: int
    height: int
    width: int


CASES = {"smoke": Case(30, 60, 80), "target": Case(300, 480, 640), "lvis": Case(300, 800, 1066)}
SIZES = {"smoke": ("smoke",), "full": ("target", "lvis")}
WAYS = ("matmul", "image", "box")


def smooth_detections(case: Case, *, seed: int) -> tuple[Tensor, Tensor]:
    """(N, 1, 28, 28) probabilities of smooth blobs and (N, 4) xyxy boxes inside the image."""
    _, boxes = random_detections(case.detections, case.height, case.width, seed=seed, device=torch.device("cpu"))
    g = torch.Generator().manual_seed(seed + 1)
    logits = F.interpolate(torch.randn(case.detections, 1, 4, 4, generator=g) * 4 + 2, size=(28, 28), mode="bilinear")
    return logits.sigmoid(), boxes


def _matmul_weights(start: Tensor, length: Tensor, size: int, src_size: int, dtype: torch.dtype) -> Tensor:
    """(N, size, S) bilinear weights that resize a length-S signal to ``length`` pixels placed at ``start``."""
    math = torch.float64
    j = torch.arange(size)[None, :] - start[:, None]  # (N, size) index in the resized mask
    inside = (j >= 0) & (j < length[:, None])  # (N, size)
    src = ((j.to(math) + 0.5) * (src_size / length.to(math))[:, None] - 0.5).clamp(min=0.0)  # (N, size)
    lo = src.floor().to(torch.int64).clamp(max=src_size - 1)  # (N, size)
    frac = (src - lo.to(math)).clamp(0.0, 1.0)  # (N, size)
    hi = (lo + 1).clamp(max=src_size - 1)  # (N, size)
    weights = torch.zeros(*j.shape, src_size, dtype=math)  # (N, size, S)
    weights.scatter_add_(2, lo[..., None], torch.where(inside, 1.0 - frac, 0.0)[..., None])
    weights.scatter_add_(2, hi[..., None], torch.where(inside, frac, 0.0)[..., None])
    return weights.to(dtype)


def matmul_paste(masks: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """(N, 1, H, W): every mask pasted by two batched matrix products, ``Wy @ P @ Wx^T``."""
    side = masks.shape[-1]
    src = side + 2 * MASK_PADDING
    padded = F.pad(masks[:, 0], (MASK_PADDING,) * 4)  # (N, S, S)
    corners = expand_boxes(boxes, src / side).to(torch.int64)  # (N, 4)
    box_w = (corners[:, 2] - corners[:, 0] + 1).clamp(min=1)  # (N,)
    box_h = (corners[:, 3] - corners[:, 1] + 1).clamp(min=1)  # (N,)
    rows = _matmul_weights(corners[:, 1], box_h, image_size[0], src, masks.dtype)  # (N, H, S)
    cols = _matmul_weights(corners[:, 0], box_w, image_size[1], src, masks.dtype)  # (N, W, S)
    return torch.bmm(torch.bmm(rows, padded), cols.transpose(1, 2))[:, None]  # (N, 1, H, W)


def _ways(masks: Tensor, boxes: Tensor, size: tuple[int, int]) -> dict[str, Callable[[], list[bytes]]]:
    """Each way as a call without arguments that returns the N compressed counts."""
    return {
        "matmul": lambda: [r["counts"] for r in encode_masks(matmul_paste(masks, boxes, size))],
        "image": lambda: [r["counts"] for r in encode_masks(paste_masks(masks, boxes, size))],
        "box": lambda: encode_box_masks(masks, boxes, size).counts(),
    }


def held_bytes(build: Callable[[], Any]) -> int:
    """Bytes of Python and NumPy memory that ``build()``'s result holds (tracemalloc, the result still alive)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = build()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del result
    return held


def memory(counts: list[bytes], size: tuple[int, int]) -> dict[str, Any]:
    """Bytes held per detection by ``counts`` (repeated to at least MEMORY_MASKS masks) as RLEs and as dicts."""
    one = RLEs.from_counts(counts, np.tile(np.array(size, np.int64), (len(counts), 1)))
    rows = np.arange(max(MEMORY_MASKS, len(counts))) % len(counts)
    rles = held_bytes(lambda: one.take(rows))
    # The form before: one dict per mask as pycocotools encodes it (its size list, two ints, a bytes object).
    dicts = held_bytes(lambda: tuple(one.take(rows).dicts()))
    return {
        "masks": int(rows.size),
        "counts_bytes": float(np.mean([len(counts[i]) for i in rows.tolist()])),
        "dicts_bytes": dicts / rows.size,
        "rles_bytes": rles / rows.size,
    }


@torch.no_grad()
def run(*, size: str = "full", repeats: int = 5) -> dict[str, Any]:
    """Time the three ways on each case of ``size``, check their RLEs and measure held bytes; returns the report."""
    cases: dict[str, Any] = {}
    for name in SIZES[size]:
        case = CASES[name]
        masks, boxes = smooth_detections(case, seed=0)
        image_size = (case.height, case.width)
        ways = _ways(masks, boxes, image_size)
        counts = {way: fn() for way, fn in ways.items()}  # also the warm-up
        times: dict[str, list[float]] = {way: [] for way in ways}
        for r in range(repeats):
            for way in WAYS if r % 2 == 0 else reversed(WAYS):
                start = time.perf_counter()
                ways[way]()
                times[way].append(time.perf_counter() - start)
        seconds = {way: statistics.median(ts) for way, ts in times.items()}
        cases[name] = {
            "detections": case.detections,
            "image": [case.height, case.width],
            "seconds": seconds,
            "ratio_to_box": {way: seconds[way] / seconds["box"] for way in WAYS if way != "box"},
            "box_equals_image": counts["box"] == counts["image"],
            "matmul_differs": sum(a != b for a, b in zip(counts["matmul"], counts["image"])),
            "held_per_detection": memory(counts["box"], image_size),
        }
    return {"size": size, "repeats": repeats, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cases": cases}  # fmt: skip


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"mask post-processing per image (paste, > 0.5, RLE), cpu, {report['threads']} thread(s), "
        f"median of {report['repeats']}:"
    ]
    for name, case in report["cases"].items():
        s, ratio, held = case["seconds"], case["ratio_to_box"], case["held_per_detection"]
        lines += [
            f"  {name}: {case['detections']} detections on {case['image'][0]}x{case['image'][1]}",
            f"    matmul {s['matmul']:.4f} s   image {s['image']:.4f} s   box {s['box']:.4f} s   "
            f"matmul/box {ratio['matmul']:.2f}x   image/box {ratio['image']:.2f}x",
            f"    RLEs: box {'==' if case['box_equals_image'] else '!='} image on all {case['detections']} masks; "
            f"matmul differs on {case['matmul_differs']}",
            f"    held per detection ({held['masks']} masks): dicts {held['dicts_bytes']:.0f} B, RLEs "
            f"{held['rles_bytes']:.0f} B (counts {held['counts_bytes']:.0f} B), "
            f"{held['dicts_bytes'] / held['rles_bytes']:.2f}x less",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gol.bench postprocess", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: the target)")
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    torch.set_num_threads(args.threads)
    report = run(size=args.size, repeats=args.repeats)
    sys.stdout.write(format_report(report) + "\n")
    write_json(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
