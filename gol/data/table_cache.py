"""Annotation files parsed once per node: the columnar table (``gol.data.annotation_table``) cached on disk and
memory-mapped read-only by every process and loader worker.

Layout: ``<cache_dir>/annotations/<file stem>-<sha256 prefix>-<variant>/``, one ``.npy`` file per column and
``meta.json`` (written last: its presence, with every column's shape, dtype and byte size matching, is what makes
the folder complete). The key is the file's content hash (``gol.fingerprint``, cached beside the file), so an
edited annotation file gets a new folder and a stale one is never read; the variant covers what the table depends
on besides the file (the LVIS version and split folder that resolve image paths, the checks applied, the layout).

Building. The first process takes ``<folder>.lock`` (``flock``), parses and validates the JSON in a child process
(``python -m gol.data.table_cache``, so the training process never holds the parsed JSON: that is several GiB at
LVIS v1's size, returned to the system when the child exits), and the child writes the folder under a temporary name
and renames it into place. Every other process waits on the lock and then maps what was built. A folder that is
damaged (a truncated column, a missing or torn ``meta.json``) is moved aside and built again, never read. A cache
folder that cannot be written gives one warning and the table is built in memory, in this process.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gol.data.annotation_table import AnnotationTable, table_from_dict
from gol.data.entries import validate_lvis_dict
from gol.data.image_files import VERSIONS, Version
from gol.data.validation import ANNOTATION_HINT, DataFormatError, load_annotation_json, require_file
from gol.fingerprint import fingerprint

log = logging.getLogger(__name__)

LAYOUT = 1  # bump when the columns or their meaning change: older folders are then ignored
META = "meta.json"
SUBDIR = "annotations"
_DATA_ERROR_EXIT = 3  # the child's exit status for a refused annotation file (its one line on stderr)
_UNWRITABLE_EXIT = 4  # ... for a cache folder it could not write


def parse_table(
    annotation_file: Path, *, version: Version, split_folder: str, federated: bool
) -> tuple[AnnotationTable, list[dict[str, Any]]]:
    """(table, categories) of an annotation file, parsed and checked in this process."""
    data = load_annotation_json(annotation_file)
    validate_lvis_dict(data, source=annotation_file, federated=federated)
    table = table_from_dict(data, source=annotation_file, version=version, split_folder=split_folder)
    return table, list(data["categories"])


def cached_table(
    annotation_file: Path, *, cache_dir: Path | None, version: Version, split_folder: str, federated: bool
) -> tuple[AnnotationTable, list[dict[str, Any]]]:
    """(table, categories) of ``annotation_file``, memory-mapped from ``cache_dir`` (built there on first use);
    parsed in memory when ``cache_dir`` is None or cannot be written."""
    require_file(annotation_file, what="annotation file", hint=ANNOTATION_HINT)
    if cache_dir is None:
        return parse_table(annotation_file, version=version, split_folder=split_folder, federated=federated)
    folder = cache_folder(annotation_file, cache_dir=cache_dir, version=version, split_folder=split_folder,
                          federated=federated)  # fmt: skip
    found = load_folder(folder)
    if found is not None:
        return found
    with contextlib.ExitStack() as stack:
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(_locked(folder.with_name(folder.name + ".lock")))
        except OSError as error:
            return _in_memory(annotation_file, folder.parent, error.strerror or str(error), version=version,
                              split_folder=split_folder, federated=federated)  # fmt: skip
        found = load_folder(folder)  # built by another process while this one waited
        if found is not None:
            return found
        unwritable = _build_in_child(annotation_file, folder, version=version, split_folder=split_folder,
                                     federated=federated)  # fmt: skip
        if unwritable is not None:
            return _in_memory(annotation_file, folder.parent, unwritable, version=version, split_folder=split_folder,
                              federated=federated)  # fmt: skip
        found = load_folder(folder)
        if found is None:
            raise RuntimeError(f"the annotation cache {folder} was built but cannot be read back")
        return found


def _in_memory(
    annotation_file: Path, where: Path, why: str, *, version: Version, split_folder: str, federated: bool
) -> tuple[AnnotationTable, list[dict[str, Any]]]:
    log.warning("cannot write the annotation cache in %s (%s); %s is parsed in memory by this process",
                where, why, annotation_file.name)  # fmt: skip
    return parse_table(annotation_file, version=version, split_folder=split_folder, federated=federated)


def cache_folder(annotation_file: Path, *, cache_dir: Path, version: str, split_folder: str, federated: bool) -> Path:
    """Where the table of this file version lives (see the module docstring)."""
    digest = fingerprint(annotation_file)["sha256"]
    variant = hashlib.sha256(f"{LAYOUT}|{version}|{split_folder}|{federated}".encode()).hexdigest()[:8]
    return Path(cache_dir) / SUBDIR / f"{annotation_file.stem}-{digest[:16]}-{variant}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process to build the annotation cache %s", path.with_suffix(""))
            started = time.monotonic()
            fcntl.flock(handle, fcntl.LOCK_EX)
            log.info("the annotation cache was built by another process (waited %.1f s)", time.monotonic() - started)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_in_child(
    annotation_file: Path, folder: Path, *, version: str, split_folder: str, federated: bool
) -> str | None:
    """Parse, check and write the table in a child process; its refusal is raised here, in its own words. Returns
    why the folder could not be written (a full or read-only file system), None once it is written."""
    started = time.monotonic()
    log.info("building the annotation cache of %s in %s (once per file version)", annotation_file, folder)
    command = [sys.executable, "-m", __name__, str(annotation_file), str(folder), "--version", version,
               "--split-folder", split_folder] + (["--federated"] if federated else [])  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    if done.returncode == _DATA_ERROR_EXIT:
        raise DataFormatError(lines[-1] if lines else f"{annotation_file} was refused")
    if done.returncode == _UNWRITABLE_EXIT:
        return lines[-1] if lines else "cannot write"
    if done.returncode != 0:
        tail = lines[-1] if lines else f"exit status {done.returncode}"
        raise RuntimeError(f"building the annotation cache of {annotation_file} failed: {tail}")
    for line in lines:  # the checks' warnings (dropped degenerate polygons, ...), once, from the building process
        log.warning("%s", line)
    log.info("annotation cache of %s built in %.1f s", annotation_file.name, time.monotonic() - started)
    return None


def write_folder(folder: Path, table: AnnotationTable, categories: Sequence[dict[str, Any]], source: Path) -> None:
    """Write the table to ``folder`` under a temporary name, then rename it into place (atomic on one file
    system); a folder already in place (another builder won) is kept and this one discarded."""
    staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        columns = {}
        for name, array in table.arrays().items():
            np.save(staging / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
            columns[name] = {"dtype": array.dtype.str, "shape": list(array.shape),
                             "bytes": (staging / f"{name}.npy").stat().st_size}  # fmt: skip
        meta = {"layout": LAYOUT, "source": str(source), "categories": list(categories), "columns": columns}
        with (staging / META).open("w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.rename(staging, folder)
        except OSError:
            if load_folder(folder) is None:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_folder(folder: Path) -> tuple[AnnotationTable, list[dict[str, Any]]] | None:
    """The memory-mapped table of a complete cache folder; None when there is none. A damaged folder is moved
    aside (and removed) so that it is built again."""
    meta_path = folder / META
    if not meta_path.is_file():
        if folder.exists():  # a folder without its meta.json was never completed
            _discard(folder, "it has no meta.json")
        return None
    try:
        meta = json.loads(meta_path.read_text())
        columns = meta["columns"]
        if meta.get("layout") != LAYOUT or set(columns) != set(AnnotationTable.names()):
            raise ValueError("written by another version of gol")
        arrays = {name: _load_column(folder / f"{name}.npy", columns[name]) for name in AnnotationTable.names()}
        categories = list(meta["categories"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        _discard(folder, str(error) or type(error).__name__)
        return None
    return AnnotationTable(**arrays), categories


def _load_column(path: Path, expected: dict[str, Any]) -> np.ndarray:
    if path.stat().st_size != expected["bytes"]:
        raise ValueError(f"{path.name} has {path.stat().st_size} bytes, {expected['bytes']} were written")
    shape = tuple(expected["shape"])
    # numpy cannot map an empty column; those are read (they are a header only).
    array = np.load(path, mmap_mode="r" if int(np.prod(shape)) else None, allow_pickle=False)
    if array.shape != shape or array.dtype.str != expected["dtype"]:
        raise ValueError(f"{path.name} holds {array.dtype.str}{array.shape}, {expected['dtype']}{shape} was written")
    return array


def _discard(folder: Path, why: str) -> None:
    log.warning("the annotation cache %s is incomplete or damaged (%s); it is built again", folder, why)
    aside = folder.with_name(f"{folder.name}.damaged-{os.getpid()}")
    with contextlib.suppress(OSError):
        os.rename(folder, aside)
        shutil.rmtree(aside, ignore_errors=True)


def _child(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description="build one annotation cache folder")
    parser.add_argument("annotation_file", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--version", choices=VERSIONS, required=True)
    parser.add_argument("--split-folder", required=True)
    parser.add_argument("--federated", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    gc.disable()  # tens of millions of objects that all live until the end: collections would only cost time
    try:
        table, categories = parse_table(args.annotation_file, version=args.version, split_folder=args.split_folder,
                                        federated=args.federated)  # fmt: skip
    except DataFormatError as error:
        sys.stderr.write(f"{error}\n")
        return _DATA_ERROR_EXIT
    try:
        write_folder(args.folder, table, categories, args.annotation_file)
    except OSError as error:
        sys.stderr.write(f"{error.strerror or error}\n")
        return _UNWRITABLE_EXIT
    return 0


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1:]))
