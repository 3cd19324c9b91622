"""Loader workers stay flat: the data layer holds an LVIS-shaped split as a few memory-mapped arrays, not a Python
object per annotation, so a worker reading it copies nothing of it (a CI-sized version of `gol.bench data`)."""

from __future__ import annotations

import gc
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

from gol.bench._data_probe import measure_workers
from gol.data import DataSource, build_lvis
from gol.data.lvis_scale import write_lvis_scale


@pytest.fixture(scope="module")
def scale_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("scale")
    files = write_lvis_scale(root / "set", scale=0.03, seed=0)  # about 3,000 train images
    return root, {"train_ann": str(files.train_ann), "val_ann": str(files.val_ann),
                  "image_root": str(files.image_root)}  # fmt: skip


def _build(root: Path, paths: dict[str, str]) -> DataSource:
    return build_lvis(version="v1", **paths, train_sizes=[640], test_size=640, max_size=1333, flip_prob=0.5,
                      cache_dir=str(root / "cache"))  # fmt: skip


def test_a_split_is_held_without_a_python_object_per_annotation(scale_set: tuple[Path, dict[str, str]]) -> None:
    root, paths = scale_set
    _build(root, paths)  # the cache, built by a child process
    gc.collect()
    before = len(gc.get_objects())
    source = _build(root, paths)
    grown = len(gc.get_objects()) - before
    annotations = source.train.table.num_annotations + source.val.table.num_annotations
    assert annotations > 15_000
    # Parsed JSON held 3 or more container objects per annotation (its dict, the bbox and polygon lists); now there
    # are the categories' entries (1203 here) and a few per split.
    assert grown < annotations / 3, grown
    for table in (source.train.table, source.val.table):
        assert all(isinstance(a, np.memmap) or a.size == 0 for a in table.arrays().values())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/smaps_rollup")
def test_a_loader_worker_stops_growing_once_warm(scale_set: tuple[Path, dict[str, str]]) -> None:
    """What a worker writes (private dirty) levels off after its first few hundred images (libraries and allocator
    pools); parsed JSON made it grow 70-100 MiB per 1,000 images of this shape (reference counts written on read)."""
    root, paths = scale_set
    source = _build(root, paths)
    loader = measure_workers(source.train, workers=1, images=3000, batch_size=2, seed=0, samples=10)
    assert loader["workers_found"] == 1 and loader["images"] >= 2800
    dirty = [s["mib"][0]["dirty"] for s in loader["samples"]]  # after 0, 300, ..., 3000 images
    warm, late = statistics.median(dirty[4:7]), statistics.median(dirty[-3:])  # ~1200-1800 vs ~2400-3000 images
    # Parsed JSON would add 85-120 MiB between the two (1,200 images); the allocator's pools move single readings by
    # up to ~40 MiB either way (medians of three: within about +-25 MiB over repeated runs).
    assert late - warm < 50.0, dirty
