"""Benchmark: GOL loss (Gumbel + DropLoss weights) against ``binary_cross_entropy_with_logits``.

Shape shorthand: R RoIs, K = 1203 foreground classes (LVIS v1), logits (R, K) float32.

Measures forward + backward of, side by side in one run (interleaved repeats, median time):
    bce       ``F.binary_cross_entropy_with_logits(logits, one_hot, reduction="sum") / R`` (target prebuilt)
    gol       ``DropLoss(activation=Gumbel(), numerics="stable")`` (the fused kernel; includes the random drops)
    official  ``DropLoss(activation=Gumbel(), numerics="official")`` (the official formulation)
and prints each time and its ratio to ``bce``. Inputs mimic an LVIS v1 step: 25% foreground RoIs with classes
drawn by image count, 815-ish tail classes at lambda = 0.0011, logits around the -2 init bias.

Usage::

    python -m gol.bench.loss [--size smoke|full] [--repeats N] [--threads T] [--json PATH]

``full`` is (8192, 1203), a 16-image step of 512 RoIs; ``smoke`` is (512, 1203) for a quick check.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from gol.activations import Gumbel
from gol.bench._report import add_json_option, write_json
from gol.data.stats import CategoryStats
from gol.losses import DropLoss

SIZES = {"smoke": (512, 1203), "full": (8192, 1203)}


def lvis_like_stats(num_classes: int = 1203, num_images: int = 99388) -> CategoryStats:
    """LVIS-v1-shaped statistics: 28% rare (1-10 images), 38% common (11-100), 34% frequent (101-20000)."""
    n_rare, n_common = round(num_classes * 0.28), round(num_classes * 0.383)
    n_freq = num_classes - n_rare - n_common
    counts = (
        torch.cat(
            (
                torch.linspace(1, 10, n_rare),
                torch.linspace(11, 100, n_common),
                torch.logspace(torch.log10(torch.tensor(101.0)).item(), 4.3, n_freq),
            )
        )
        .round()
        .to(torch.int64)
    )
    groups = ("r",) * n_rare + ("c",) * n_common + ("f",) * n_freq
    return CategoryStats(
        category_ids=tuple(range(1, num_classes + 1)),
        names=tuple(f"class_{i}" for i in range(1, num_classes + 1)),
        image_count=counts,
        instance_count=counts * 2,
        frequency=groups,
        num_images=num_images,
    )


def _inputs(rows: int, stats: CategoryStats) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    labels = torch.multinomial(stats.image_count.float(), rows, replacement=True, generator=g) + 1
    labels[torch.rand(rows, generator=g) < 0.75] = 0  # 25% positive RoIs (torchvision / mmdet sampler)
    logits = torch.randn(rows, stats.num_classes, generator=g) * 1.5 - 3.0
    target = torch.zeros(rows, stats.num_classes)
    fg = labels > 0
    target[fg.nonzero().squeeze(1), labels[fg] - 1] = 1.0
    return logits, labels, target


def _time(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(*, size: str = "full", repeats: int = 7) -> dict[str, object]:
    """Time the three losses; returns median milliseconds and ratios to ``bce``."""
    rows, num_classes = SIZES[size]
    stats = lvis_like_stats(num_classes)
    logits, labels, target = _inputs(rows, stats)
    logits.requires_grad_(True)
    gol = DropLoss(activation=Gumbel(), num_classes=num_classes, stats=stats, numerics="stable")
    official = DropLoss(activation=Gumbel(), num_classes=num_classes, stats=stats, numerics="official")

    def step(loss_fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def fn() -> None:
            logits.grad = None
            loss_fn().backward()

        return fn

    cases = {
        "bce": step(lambda: F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / rows),
        "gol": step(lambda: gol(logits, labels)),
        "official": step(lambda: official(logits, labels)),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(_time(fn))
    median_ms = {name: 1e3 * statistics.median(ts) for name, ts in times.items()}
    return {
        "size": size,
        "shape": [rows, num_classes],
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "tail_classes": int(gol.tail.sum()),
        "median_ms": median_ms,
        "ratio_to_bce": {name: median_ms[name] / median_ms["bce"] for name in ("gol", "official")},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gol.bench.loss", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: less noise)")
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    result = run(size=args.size, repeats=args.repeats)
    ms, ratio = result["median_ms"], result["ratio_to_bce"]
    assert isinstance(ms, dict) and isinstance(ratio, dict)
    sys.stdout.write(
        f"loss fwd+bwd on {tuple(result['shape'])} float32, {result['threads']} thread(s), "  # type: ignore[arg-type]
        f"median of {args.repeats}:\n"
        f"  bce_with_logits  {ms['bce']:8.1f} ms\n"
        f"  gol (stable)     {ms['gol']:8.1f} ms   {ratio['gol']:.2f}x bce\n"
        f"  gol (official)   {ms['official']:8.1f} ms   {ratio['official']:.2f}x bce\n"
    )
    write_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
