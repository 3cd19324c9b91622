"""The process the data benchmark measures: it builds the DataSource as a training process does, then loads
training batches through the training loader with W workers, and writes what it measured as JSON.

    python -m gol.bench._data_probe REQUEST_JSON REPORT_PATH

Started fresh for each measurement, so its startup and peak memory are its own. Only the data layer's public API
is used (``build_lvis``, the DataSource's ``train`` dataset, ``gol.loader.batches``), so the figures are those of
whatever implementation the data layer has. The parts of the startup are timed by wrapping the named steps the
data layer has today (``PARTS``); a step it no longer has is left out of the report.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gol.bench._proc_memory import forked_children, max_rss_mib, read_memory, wait_idle
from gol.config.dataset import LVISDatasetConf
from gol.data import DataFormatError, RandomSampler, build_lvis
from gol.data.lvis_scale import annotation_file_names
from gol.loader import StreamPosition, batches

log = logging.getLogger(__name__)

SAMPLES = 20  # memory readings of every worker while the images load

# (part of the startup, module, attribute path): today's steps of building an LVIS split. The annotation tables are
# mapped from the cache, or built there by a child process (its parse and checks are inside that part); the three
# parts after it run in this process only without a cache (--cache-dir none).
PARTS = (
    ("annotation tables", "gol.data.lvis_dataset", "cached_table"),
    ("json parse here", "gol.data.table_cache", "load_annotation_json"),
    ("entry checks here", "gol.data.table_cache", "validate_lvis_dict"),
    ("tables here", "gol.data.table_cache", "table_from_dict"),
    ("image files listed", "gol.data.lvis_dataset", "LVISDetection._check_image_files"),
)


def _wrap_timed(owner: Any, name: str, key: str, totals: dict[str, float]) -> None:
    """Replace ``owner.name`` by a wrapper adding its wall time to ``totals[key]``."""
    inner: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(inner)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            totals[key] = totals.get(key, 0.0) + time.perf_counter() - start

    setattr(owner, name, timed)


def time_parts(totals: dict[str, float]) -> list[str]:
    """Wrap every step of ``PARTS`` the data layer has; returns the parts left out."""
    missing = []
    for key, module_name, path in PARTS:
        owner: Any = importlib.import_module(module_name)
        *outer, name = path.split(".")
        for attr in outer:
            owner = getattr(owner, attr, None)
        if owner is None or not callable(getattr(owner, name, None)):
            missing.append(key)
            continue
        totals[key] = 0.0  # a step not taken this time (the parse, with a cache) shows as 0 s
        _wrap_timed(owner, name, key, totals)
    return missing


def build(root: Path, version: str, cache_dir: str | None) -> tuple[Any, dict[str, Any]]:
    """The DataSource of the set under ``root`` as ``dataset=lvis_v1`` (or ``lvis_v05``) builds it, and its
    startup report."""
    conf = LVISDatasetConf()
    train_name, val_name = annotation_file_names(version)
    parts: dict[str, float] = {}
    missing = time_parts(parts)
    before = read_memory()
    start = time.perf_counter()
    source = build_lvis(
        version=version, train_ann=str(root / train_name), val_ann=str(root / val_name),
        image_root=str(root / "coco"), train_sizes=conf.train_sizes, test_size=conf.test_size,
        max_size=conf.max_size, flip_prob=conf.flip_prob, cache_dir=cache_dir,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return source, {
        "seconds": seconds,
        "parts_seconds": parts,
        "parts_left_out": missing,
        "train_images": len(source.train),
        "val_images": len(source.val),
        "categories": source.stats.num_classes,
        "memory_before_build_mib": before.as_dict(),
        "memory_after_build_mib": read_memory().as_dict(),
        "max_rss_mib": max_rss_mib(),
    }


def measure_workers(
    dataset: Any, *, workers: int, images: int, batch_size: int, seed: int, samples: int = SAMPLES
) -> dict[str, Any]:
    """Each worker's memory when the first batch arrives and then ``samples`` times while ``images`` more are loaded
    through the training loader (``gol.loader.batches``, one process, shuffled order).

    Each reading waits until the workers are idle (their prefetched batches loaded and handed over), so that it holds
    what a worker keeps, not the image and masks it happens to be working on.
    """
    usable = len(dataset) // batch_size * batch_size
    images = max(min(images, usable - batch_size), 1)  # within one epoch: a new epoch starts new workers
    before = forked_children()
    stream = batches(
        dataset, RandomSampler(dataset=dataset, seed=seed), batch_size=batch_size, start=StreamPosition(),
        seed=seed, num_workers=workers,
    )  # fmt: skip
    try:
        start = time.perf_counter()
        next(stream)
        pids = sorted(forked_children() - before)
        warm = time.perf_counter()
        idle = wait_idle(pids)
        paused = time.perf_counter() - warm
        series = [(0, {pid: read_memory(pid) for pid in pids})]
        loaded = 0
        for k in range(1, samples + 1):
            while loaded < images * k // samples:
                _, (batch, _) = next(stream)
                loaded += len(batch)
            pause = time.perf_counter()
            idle = wait_idle(pids) and idle
            series.append((loaded, {pid: read_memory(pid) for pid in pids}))
            paused += time.perf_counter() - pause
        seconds = time.perf_counter() - warm - paused
        process = read_memory()
    finally:
        stream.close()
    return {
        "workers": workers,
        "workers_found": len(pids),
        "batch_size": batch_size,
        "first_batch_seconds": warm - start,
        "readings_idle": idle,  # False: some worker was still busy at a reading (waited 10 s)
        "images": loaded,
        "seconds": seconds,
        "images_per_second": loaded / seconds if seconds > 0 else float("nan"),
        # after each sample's images (0: when the first batch arrived), every worker's memory
        "samples": [{"images": n, "mib": [memory[p].as_dict() for p in pids]} for n, memory in series],
        "process_after_mib": process.as_dict(),
    }


def run(request: dict[str, Any]) -> dict[str, Any]:
    root, version = Path(request["root"]), request["version"]
    source, startup = build(root, version, request.get("cache_dir"))
    log.info("built in %.1f s: train %s, val %s", startup["seconds"], source.train, source.val)
    loaders = []
    for workers in request["workers"]:
        result = measure_workers(
            source.train, workers=workers, images=request["images"], batch_size=request["batch_size"],
            seed=request["seed"],
        )  # fmt: skip
        log.info("%d workers: %d images in %.1f s", workers, result["images"], result["seconds"])
        loaders.append(result)
    return {"startup": startup, "loaders": loaders, "pid": os.getpid()}


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    request, report_path = json.loads(argv[0]), Path(argv[1])
    try:
        report = run(request)
    except (DataFormatError, FileNotFoundError) as error:
        log.error("%s", str(error).splitlines()[0])
        return 2
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
