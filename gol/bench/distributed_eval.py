"""Benchmark: evaluation of a val split by one process and by two gloo processes on CPU, side by side.

    python -m gol.bench distributed_eval [--size smoke|full] [--repeats N] [--threads T] [--workers W]
                                         [--root DIR] [--json PATH]

What the engine runs after training (``gol.inference``): every process predicts its shard of the val split,
rank 0 gathers the detections and computes the metrics (hotcoco, bbox and segm) while the other waits. The demo's
cell (the tiny detector, from a fixed seed, on the embedded dataset's val split: full 250 images, smoke 16) runs
as a fresh job of 1 and of 2 spawned processes, each with T torch threads and W loader workers, interleaved
(1, 2, 2, 1, ...). Timed on rank 0 from a barrier after a warm-up image: inference with the gather, then the
metrics. The report is the median of each side, the ratio 2 / 1 (the target is at most 0.6: the inference halves,
the metrics stay on rank 0), rank 0's CPU time of inference (its share of the work whatever else runs on the
machine's cores: on cores shared with other work the wall times need not show the split), whether the metrics,
per-category AP and detections of every run are identical, and the memory rank 0 holds for the gathered
detections: their size, the part that came from the other process (pickled, as it travels), and rank 0's peak
resident memory against one process's.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import pickle
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from gol import distributed
from gol.bench._report import add_json_option, write_json
from gol.build import build_components, build_data
from gol.config import CONF_DIR, register_configs
from gol.config.resolvers import register_resolvers
from gol.evaluation.detections import Detections
from gol.inference import predict_sharded, score, shard_indices

TARGET_RATIO = 0.6  # two processes against one: the inference halves, the metrics stay on rank 0
# Dataset overrides per size (smoke: the smoke scale's dataset; full: the demo's, 250 val images).
SIZES = {
    "smoke": ("dataset.num_shapes=3", "dataset.num_colours=2", "dataset.num_textures=2", "dataset.num_train=120",
              "dataset.num_val=16", "dataset.max_images_per_category=105"),
    "full": (),
}  # fmt: skip
REPEATS = {"smoke": 1, "full": 3}


def compose_config(size: str, root: Path) -> DictConfig:
    """The demo's training config (``gol-train``'s defaults), data under ``root``."""
    register_configs()
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose("train", overrides=[f"paths.root={root}", "logger=none", *SIZES[size]])


def _rss_mib() -> float:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _pickled_mib(dets: Detections) -> float:
    return len(pickle.dumps(dets, protocol=pickle.HIGHEST_PROTOCOL)) / 2**20


def _held_mib(dets: Detections) -> float:
    """What the detections' columns and RLE counts take (not the Python objects around them)."""
    arrays = sum(a.nbytes for a in (dets.image_ids, dets.category_ids, dets.scores, dets.boxes) if a is not None)
    counts = sum(len(s["counts"]) for s in dets.segmentations or ())
    return (arrays + counts) / 2**20


def _job(rank: int, processes: int, port: int, cfg: DictConfig, threads: int, workers: int, out: Path) -> None:
    """One process of a job: its shard of the split, and on rank 0 the metrics and the report."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(processes), RANK=str(rank),
                      LOCAL_RANK=str(rank))  # fmt: skip
    logging.basicConfig(level=logging.WARNING, force=True)
    register_resolvers()  # the config's own resolvers, in this fresh process
    # Loader workers forked, as in a process that torchrun or srun starts (a spawned process would spawn them too).
    multiprocessing.set_start_method("fork", force=True)
    torch.set_num_threads(threads)
    world = distributed.init("cpu")
    try:
        data = build_data(cfg)
        torch.manual_seed(cfg.seed)
        model = build_components(cfg, data).model.eval()
        with torch.inference_mode():
            model([data.val[0][0]])  # warm-up: first-call costs are no part of an evaluation
        conf = cfg.eval
        rss_before = _rss_mib()
        if world.distributed:
            torch.distributed.barrier()
        start, cpu_start = time.perf_counter(), time.process_time()
        dets = predict_sharded(model, data.val, world=world, category_ids=tuple(data.stats.category_ids),
                               batch_size=conf.batch_size, device=torch.device("cpu"), num_workers=workers)  # fmt: skip
        predicted, cpu_predicted = time.perf_counter(), time.process_time()
        if dets is not None:
            metrics, per_category = score(dets, data, conf)
            done = time.perf_counter()
            own = set(shard_indices(len(data.val), conf.batch_size, distributed.World(0, processes)))
            own_ids = np.array([data.val.image_ids[i] for i in sorted(own)], dtype=np.int64)
            others = dets.subset(np.flatnonzero(~np.isin(dets.image_ids, own_ids)))
            report = {
                "inference_s": predicted - start, "metrics_s": done - predicted, "total_s": done - start,
                "inference_cpu_s": cpu_predicted - cpu_start,
                "metrics": metrics, "per_category": per_category, "detections": dets,
                "held_mib": _held_mib(dets), "pickled_mib": _pickled_mib(dets),
                "from_others_pickled_mib": _pickled_mib(others) if processes > 1 else 0.0,
                "rss_before_mib": rss_before, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }  # fmt: skip
            out.write_bytes(pickle.dumps(report))
        distributed.wait_for_main(world)
    finally:
        distributed.shutdown(world)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_job(processes: int, cfg: DictConfig, threads: int, workers: int, folder: Path) -> dict[str, Any]:
    out = folder / f"job-{processes}-{time.monotonic_ns()}.pkl"
    mp.start_processes(_job, args=(processes, _free_port(), cfg, threads, workers, out), nprocs=processes,
                       join=True, start_method="spawn")  # fmt: skip
    report: dict[str, Any] = pickle.loads(out.read_bytes())
    out.unlink()
    return report


def _same(a: Detections, b: Detections) -> bool:
    """The same detections in the same order."""
    columns = ("image_ids", "category_ids", "scores", "boxes")
    return all(np.array_equal(getattr(a, c), getattr(b, c)) for c in columns) and a.segmentations == b.segmentations


def run(
    *, size: str = "full", repeats: int | None = None, threads: int = 1, workers: int | None = None,
    root: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Evaluate with 1 and 2 processes, interleaved, ``repeats`` times each; returns the report."""
    cfg = compose_config(size, root or Path(tempfile.gettempdir()) / "gol-bench")
    data = build_data(cfg)  # generated once, before the jobs read it
    workers = int(cfg.num_workers) if workers is None else workers
    repeats = REPEATS[size] if repeats is None else repeats
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for processes in (1, 2) if r % 2 == 0 else (2, 1):
                runs[processes].append(_run_job(processes, cfg, threads, workers, Path(tmp)))
    reference = runs[1][0]
    identical = all(
        run["metrics"] == reference["metrics"]
        and run["per_category"] == reference["per_category"]
        and _same(run["detections"], reference["detections"])
        for side in runs.values()
        for run in side
    )
    sides = {
        f"{processes} process{'es' if processes > 1 else ''}": {
            key: statistics.median(run[key] for run in side)
            for key in ("inference_s", "metrics_s", "total_s", "inference_cpu_s")
        }
        | {key: max(run[key] for run in side) for key in ("peak_rss_mib", "held_mib", "pickled_mib")}
        | {"from_others_pickled_mib": side[0]["from_others_pickled_mib"]}
        for processes, side in runs.items()
    }
    one, two = sides["1 process"], sides["2 processes"]
    return {
        "size": size, "images": len(data.val), "detections": len(reference["detections"]), "repeats": repeats,
        "threads": threads, "workers": workers, "batch_size": int(cfg.eval.batch_size), "sides": sides,
        "ratio": two["total_s"] / one["total_s"], "inference_ratio": two["inference_s"] / one["inference_s"],
        "inference_cpu_ratio": two["inference_cpu_s"] / one["inference_cpu_s"],
        "target_ratio": TARGET_RATIO, "identical": identical,
        "metrics": {t: reference["metrics"][t]["AP"] for t in ("bbox", "segm")},
    }  # fmt: skip


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"evaluation of {report['images']} val images ({report['detections']} detections), CPU, "
        f"{report['threads']} thread(s) and {report['workers']} loader worker(s) per process, batch "
        f"{report['batch_size']}, median of {report['repeats']}:"
    ]
    for name, side in report["sides"].items():
        lines.append(
            f"  {name:<11} {side['total_s']:7.2f} s (inference + gather {side['inference_s']:6.2f} s, metrics on "
            f"rank 0 {side['metrics_s']:5.2f} s), rank 0: {side['inference_cpu_s']:6.2f} CPU s of inference, peak RSS "
            f"{side['peak_rss_mib']:4.0f} MiB"
        )
    two = report["sides"]["2 processes"]
    lines += [
        f"  ratio 2 / 1 processes: {report['ratio']:.2f}x (inference {report['inference_ratio']:.2f}x; target <= "
        f"{report['target_ratio']}x); rank 0's CPU time of inference {report['inference_cpu_ratio']:.2f}x",
        f"  metrics, per-category AP and detections identical: {'yes' if report['identical'] else 'NO'} "
        f"(bbox AP {report['metrics']['bbox']}, segm AP {report['metrics']['segm']})",
        f"  gathered detections on rank 0: {two['held_mib']:.2f} MiB of columns and RLE counts "
        f"({two['pickled_mib']:.2f} MiB pickled), {two['from_others_pickled_mib']:.2f} MiB of it sent by the other "
        "process",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gol.bench distributed_eval", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--repeats", type=int, default=None, help="jobs per side (default: smoke 1, full 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers per process (default: the run's)")
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="paths.root, where the embedded dataset is generated (default: a temp folder)",
    )
    add_json_option(parser)
    args = parser.parse_args(argv)
    if (args.repeats is not None and args.repeats < 1) or args.threads < 1 or (args.workers or 0) < 0:
        parser.error("--repeats and --threads must be >= 1, --workers >= 0")
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    report = run(size=args.size, repeats=args.repeats, threads=args.threads, workers=args.workers, root=args.root)
    sys.stdout.write(format_report(report) + "\n")
    write_json(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
