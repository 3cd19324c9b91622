"""Benchmark: the test-time mask path (mask logits of the predicted class, mask pasting) against torchvision's.

    python -m gol.bench inference [--size smoke|full] [--repeats N] [--threads T] [--device cpu|cuda] [--json PATH]

Two steps of Mask R-CNN's test time, each timed side by side on the same random inputs, interleaved, after a
warm-up; the report is the median time per image of each implementation, their ratio and the largest
difference between their outputs:

- ``mask``: torchvision computes the mask predictor's 1x1 logit layer for all K + 1 classes and keeps the
  predicted one (``maskrcnn_inference``); ``gol.models.predictors.mask_probabilities`` computes only the
  predicted class's logits.
- ``paste``: every detection's 28 x 28 mask is resized into its box and pasted into a full-size image;
  torchvision does it one mask at a time (``paste_masks_in_image``), ``gol.models.paste.paste_masks`` computes
  every mask on its box's pixels only (batched taps, two products and a sum per pixel) and writes it into zeros.

Test-time evaluation skips the full-size images altogether: ``python -m gol.bench postprocess`` times that path.

Cases: ``smoke`` is the demo's (100 detections on a ~128 x 136 image, 60 classes, tiny mask head); ``full``
adds LVIS test images (300 detections on 800 x 1066, 1203 classes, the 256-channel mask head).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torchvision
from torch import Tensor
from torchvision.models.detection.roi_heads import maskrcnn_inference, paste_masks_in_image

from gol.bench._report import add_json_option, write_json
from gol.models.paste import paste_masks
from gol.models.predictors import build_mask_predictor, mask_probabilities

MASK_SIDE = 28  # torchvision's mask head output
FEATURE_SIDE = 14  # the mask head's RoIAlign output


@dataclass(frozen=True)
class Case:
    detections: int
    height: int
    width: int
    classes: int  # K
    mask_channels: int  # the mask head's width


CASES = {"demo": Case(100, 128, 136, 60, 32), "lvis": Case(300, 800, 1066, 1203, 256)}
SIZES = {"smoke": ("demo",), "full": ("demo", "lvis")}


def random_detections(num: int, height: int, width: int, *, seed: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(N, 1, 28, 28) probabilities and (N, 4) xyxy boxes inside the image, of random position and size."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(num, generator=g) * width * 0.9
    y0 = torch.rand(num, generator=g) * height * 0.9
    x1 = (x0 + 1 + torch.rand(num, generator=g) * width * 0.5).clamp(max=width)
    y1 = (y0 + 1 + torch.rand(num, generator=g) * height * 0.5).clamp(max=height)
    masks = torch.rand(num, 1, MASK_SIDE, MASK_SIDE, generator=g)
    return masks.to(device), torch.stack([x0, y0, x1, y1], dim=1).to(device)


def _timed(fn: Callable[[], Tensor], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _implementations(case: Case, device: torch.device) -> dict[str, dict[str, Callable[[], Tensor]]]:
    """Per step, torchvision's and gol's implementation as calls without arguments on the same inputs."""
    masks, boxes = random_detections(case.detections, case.height, case.width, seed=0, device=device)
    g = torch.Generator().manual_seed(1)
    predictor = build_mask_predictor(case.mask_channels, case.mask_channels, case.classes, normed=False).to(device)
    features = torch.rand(case.detections, case.mask_channels, FEATURE_SIDE, FEATURE_SIDE, generator=g)
    features = features.to(device)
    labels = [torch.randint(1, case.classes + 1, (case.detections,), generator=g).to(device)]
    size = (case.height, case.width)
    return {
        "mask": {
            "torchvision": lambda: maskrcnn_inference(predictor(features), labels)[0],
            "gol": lambda: mask_probabilities(predictor, features, labels)[0],
        },
        "paste": {
            "torchvision": partial(paste_masks_in_image, masks, boxes, size),
            "gol": partial(paste_masks, masks, boxes, size),
        },
    }


@torch.no_grad()
def run(*, size: str = "full", repeats: int = 5, device: str = "cpu") -> dict[str, Any]:
    """Time both implementations of each step on each case of ``size``; returns the report."""
    dev = torch.device(device)
    cases: dict[str, Any] = {}
    for name in SIZES[size]:
        case = CASES[name]
        steps: dict[str, Any] = {}
        for step, impls in _implementations(case, dev).items():
            difference = float((impls["gol"]() - impls["torchvision"]()).abs().max())  # also the warm-up
            times: dict[str, list[float]] = {impl: [] for impl in impls}
            for r in range(repeats):
                order = list(impls) if r % 2 == 0 else list(reversed(impls))
                for impl in order:
                    times[impl].append(_timed(impls[impl], dev))
            median_ms = {impl: 1e3 * statistics.median(ts) for impl, ts in times.items()}
            steps[step] = {
                "median_ms": median_ms,
                "speedup": median_ms["torchvision"] / median_ms["gol"],
                "max_abs_difference": difference,
            }
        cases[name] = {
            "detections": case.detections,
            "image": [case.height, case.width],
            "classes": case.classes,
            "mask_channels": case.mask_channels,
            "steps": steps,
        }
    return {
        "size": size, "repeats": repeats, "device": str(dev), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "torchvision": torchvision.__version__, "cases": cases,
    }  # fmt: skip


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"test-time mask steps per image, {report['device']}, {report['threads']} thread(s), "
        f"median of {report['repeats']}:"
    ]
    for name, case in report["cases"].items():
        lines.append(
            f"  {name}: {case['detections']} detections on {case['image'][0]}x{case['image'][1]}, "
            f"{case['classes']} classes"
        )
        for step, result in case["steps"].items():
            ms = result["median_ms"]
            lines.append(
                f"    {step:<6} torchvision {ms['torchvision']:8.1f} ms, gol {ms['gol']:8.1f} ms, "
                f"{result['speedup']:.2f}x faster, max |difference| {result['max_abs_difference']:.1e}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gol.bench inference", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: less noise)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    torch.set_num_threads(args.threads)
    report = run(size=args.size, repeats=args.repeats, device=args.device)
    sys.stdout.write(format_report(report) + "\n")
    write_json(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
