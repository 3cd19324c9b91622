"""Benchmark: the data side at LVIS scale: DataSource startup, memory per process and per loader worker, node total.

    python -m gol.bench data --root DIR [--version v1|v0.5] [--gpus 4 8] [--workers 2 4 8] [--images 30000]
        [--batch-size 2] [--seed 0] [--cache-dir DIR|none] [--json PATH]

``DIR`` holds LVIS-format files and their images as ``gol-data lvis-scale --out DIR`` writes them (or real LVIS
files beside a ``coco/`` folder of the COCO images). In a fresh process, the benchmark builds the DataSource as a
training process does (``build_lvis`` with ``dataset=lvis_v1``'s settings) and times it, with its parts where the
data layer's steps can be told apart; it reports that process's peak memory (``ru_maxrss``) and its RSS / PSS /
USS after the build. Then, per worker count W, it loads ``--images`` training images through the training loader
(``gol.loader.batches``, shuffled order, ``--batch-size`` images per batch) and reads each worker's memory from
``/proc/<pid>/smaps_rollup`` when the first batch arrives and twenty times more while the images load, each time
once the workers are idle (no image half-loaded; the allocator's free memory still makes a reading vary by tens of
MiB, hence a fit over many readings and its standard error). A worker's first few hundred images also bring
libraries and allocator pools to their working size (on the 1% set, ``--scale 0.01``, whose objects are too few to
copy much, a worker's USS stops growing after ~200 images); the least-squares slope of its private dirty memory over
the second half of the run is the steady growth per 1,000 images: the copy-on-read cost of the data layer's Python
objects (reading an object writes its reference count, which copies its page). Private dirty rather than USS: USS
also counts the pages of the memory-mapped annotation cache that only this worker has read so far, which are the
node's page cache, shared by every process that reads them and reclaimable.

Projected node total for G GPUs (one training process each) x W workers, over one epoch of the training split:
``G x process RSS + G x W x worker private dirty``, the latter being its measured end plus the steady growth over the rest
of its share of the epoch (``images / (G x W)``). Pages a worker still shares with its process are counted once, in
the process's RSS; what a worker copied is its own (USS). A worker copies at most what its process held privately
when it forked (the process's USS after the build), which caps the growth; the loader starts new workers each epoch,
so one epoch is the horizon. The process RSS counts the shared libraries once per process, which overstates a node
by about their size per extra GPU; the model, CUDA context and batches in flight are not part of these figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gol.bench._report import add_json_option, write_json
from gol.data.lvis_scale import annotation_file_names

log = logging.getLogger(__name__)

MIB_PER_GIB = 1024


def measure(
    root: Path,
    *,
    version: str,
    workers: Sequence[int],
    images: int,
    batch_size: int,
    seed: int,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """Run the measuring process (``gol.bench._data_probe``) on ``root``; returns its report."""
    request = {"root": str(root), "version": version, "workers": list(workers), "images": images,
               "batch_size": batch_size, "seed": seed, "cache_dir": cache_dir}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        done = subprocess.run(
            [sys.executable, "-m", "gol.bench._data_probe", json.dumps(request), str(report_path)], check=False
        )
        if done.returncode != 0 or not report_path.is_file():
            raise RuntimeError(f"the measuring process failed (exit {done.returncode}); its log is above")
        return json.loads(report_path.read_text())


def summarise(loader: dict[str, Any]) -> dict[str, Any]:
    """Per-worker means of one loader run: USS / PSS at the start (first batch), halfway and at the end, and the USS
    growth per 1,000 images a worker loads: over the whole run, and the least-squares slope over the second half (the
    first few hundred images of a worker also bring libraries and allocator pools to their working size)."""
    samples = loader["samples"]
    workers = max(loader["workers_found"], 1)
    half = len(samples) // 2
    images = [s["images"] / workers for s in samples]  # per worker

    def uss(k: int) -> list[float]:  # what a worker wrote (private dirty): its copies, not pages it only read
        return [s["mib"][k]["dirty"] for s in samples]

    whole = [(uss(k)[-1] - uss(k)[0]) / images[-1] * 1000 if images[-1] else float("nan") for k in range(workers)]
    fits = [_slope(images[half:], uss(k)[half:]) for k in range(workers)]
    steady = [slope * 1000 for slope, _ in fits]
    error = math.sqrt(sum(se**2 for _, se in fits)) / len(fits) * 1000 if fits else float("nan")  # of the mean

    def mean_of(i: int, key: str) -> float:
        return _mean([m[key] for m in samples[i]["mib"]])

    return {
        "uss_start": mean_of(0, "uss"), "uss_half": mean_of(half, "uss"), "uss_end": mean_of(-1, "uss"),
        "dirty_start": mean_of(0, "dirty"), "dirty_end": mean_of(-1, "dirty"),
        "pss_start": mean_of(0, "pss"), "pss_end": mean_of(-1, "pss"),
        "growth_per_1000": _mean(whole), "steady_growth_per_1000": _mean(steady), "steady_growth_per_1000_se": error,
        "steady_growth_per_1000_max": max(steady, default=float("nan")), "images_per_worker": images[-1],
    }  # fmt: skip


def _slope(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope of ys over xs and its standard error (nan where there are too few points)."""
    mx, my = _mean(xs), _mean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if not var:
        return float("nan"), float("nan")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
    residual = sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys, strict=True))
    return slope, math.sqrt(residual / (len(xs) - 2) / var) if len(xs) > 2 else float("nan")


def project(report: dict[str, Any], *, gpus: Sequence[int]) -> list[dict[str, Any]]:
    """Node totals for every G in ``gpus`` and every measured W (see the module docstring): a worker's USS over one
    epoch is extrapolated from its measured end at the second half's growth rate."""
    startup = report["startup"]
    process = startup["memory_after_build_mib"]
    epoch = startup["train_images"]
    rows = []
    for loader in report["loaders"]:
        w, m = loader["workers"], loader["summary"]
        for g in gpus:
            share = epoch / (g * w)  # images one worker loads in an epoch
            rate = m["steady_growth_per_1000"] if m["steady_growth_per_1000"] > 0 else 0.0  # nan: no growth seen
            linear = m["dirty_end"] + rate * (share - m["images_per_worker"]) / 1000
            ceiling = m["dirty_start"] + process["uss"]  # a worker copies at most what its process held privately
            worker = min(max(linear, m["dirty_start"]), ceiling)
            rows.append({
                "gpus": g, "workers": w, "worker_epoch_images": share, "worker_epoch_mib": worker,
                "growth_capped": linear > ceiling, "process_mib": process["rss"],
                "node_mib": g * process["rss"] + g * w * worker,
            })  # fmt: skip
    return rows


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def format_report(report: dict[str, Any]) -> str:
    s = report["startup"]
    after, before = s["memory_after_build_mib"], s["memory_before_build_mib"]
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in s["parts_seconds"].items())
    other = s["seconds"] - sum(s["parts_seconds"].values())
    lines = [
        f"data side at {report['root']} (LVIS {report['version']}, annotation cache {report['cache_dir']}): train {s['train_images']:,} annotated images, "
        f"val {s['val_images']:,} images, {s['categories']} categories",
        f"startup, build_lvis: {s['seconds']:.1f} s ({parts}{', ' if parts else ''}other {other:.1f} s)",
        f"process: peak {s['max_rss_mib']:,.0f} MiB (ru_maxrss); after build RSS {after['rss']:,.0f} / PSS "
        f"{after['pss']:,.0f} / USS {after['uss']:,.0f} MiB (before the build: RSS {before['rss']:,.0f} MiB)",
        "",
        f"loader workers (batches of {report['batch_size']}), MiB per worker, mean over workers; growth of what a "
        "worker wrote (private dirty: its copies, not the mapped cache pages it only read) per 1,000 images: whole "
        "run, and slope over the second half +- its standard error (max over workers)",
        "   W  images  img/s  USS start   halfway      end  PSS start     end  dirty start   end  growth  2nd half",
    ]
    for r in report["loaders"]:
        m = r["summary"]
        lines.append(
            f"{r['workers']:4d} {r['images']:7d} {r['images_per_second']:6.1f} {m['uss_start']:10.0f} "
            f"{m['uss_half']:9.0f} {m['uss_end']:8.0f} {m['pss_start']:10.0f} {m['pss_end']:7.0f} "
            f"{m['dirty_start']:12.0f} {m['dirty_end']:5.0f} "
            f"{m['growth_per_1000']:7.1f} {m['steady_growth_per_1000']:7.1f} +- {m['steady_growth_per_1000_se']:.1f} "
            f"({m['steady_growth_per_1000_max']:.1f})"
        )
    lines += [
        "",
        f"projected node total, one epoch of {s['train_images']:,} images: G x process RSS + G x W x worker private "
        "dirty (its end + the second half's growth over the rest of its share)",
        "   G   W  images/worker  worker MiB   node GiB",
    ]
    for p in report["projection"]:
        capped = "  (capped: the process's USS)" if p["growth_capped"] else ""
        lines.append(
            f"{p['gpus']:4d} {p['workers']:3d} {p['worker_epoch_images']:14,.0f} {p['worker_epoch_mib']:11,.0f} "
            f"{p['node_mib'] / MIB_PER_GIB:10.1f}{capped}"
        )
    return "\n".join(lines)


def _check_root(parser: argparse.ArgumentParser, root: Path, version: str) -> None:
    missing = [name for name in annotation_file_names(version) if not (root / name).is_file()]
    if missing or not (root / "coco").is_dir():
        parser.error(
            f"{root} lacks {', '.join(missing) or 'coco/'}: write a set with `gol-data lvis-scale --out {root} "
            f"--version {version}` (or put LVIS's files beside a coco/ folder of the COCO images)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gol.bench data", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="folder written by gol-data lvis-scale")
    parser.add_argument("--version", choices=["v1", "v0.5"], default="v1")
    parser.add_argument("--gpus", type=int, nargs="+", default=[4, 8], help="GPUs (training processes) per node")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4, 8], help="loader workers per process")
    parser.add_argument("--images", type=int, default=30_000, help="training images loaded per worker count")
    parser.add_argument("--batch-size", type=int, default=2, help="images per batch of one process (LVIS: 16 / 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None,
                        help="annotation cache folder, as dataset.cache_dir (default: ROOT/cache); 'none' parses "
                             "the files in the measured process, as before the cache")  # fmt: skip
    add_json_option(parser)
    args = parser.parse_args(argv)
    if min(args.gpus) < 1 or min(args.workers) < 1 or args.images < 1 or args.batch_size < 1:
        parser.error("--gpus, --workers, --images and --batch-size must be >= 1")
    if not sys.platform.startswith("linux"):
        parser.error("this benchmark reads /proc/<pid>/smaps_rollup: it runs on Linux")
    _check_root(parser, args.root, args.version)
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    cache_dir = None if args.cache_dir == "none" else str(args.cache_dir or args.root / "cache")
    try:
        measured = measure(args.root, version=args.version, workers=args.workers, images=args.images,
                           batch_size=args.batch_size, seed=args.seed, cache_dir=cache_dir)  # fmt: skip
    except RuntimeError as error:
        log.error("%s", error)
        return 2
    report = {"root": str(args.root), "version": args.version, "batch_size": args.batch_size, "cache_dir": cache_dir,
              **measured}  # fmt: skip
    for loader in report["loaders"]:
        loader["summary"] = summarise(loader)
    report["projection"] = project(report, gpus=args.gpus)
    sys.stdout.write(format_report(report) + "\n")
    write_json(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
