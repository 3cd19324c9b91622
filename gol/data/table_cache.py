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
import secrets
import shutil
import socket
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


class AnnotationCacheError(DataFormatError):
    """The annotation cache cannot be built or mapped here; the message says why and how to go on."""


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
        return _announce(found)
    unwritable = None
    with contextlib.ExitStack() as stack:
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            lock = stack.enter_context(_locked(folder.with_name(folder.name + ".lock")))
        except OSError as error:
            unwritable = error.strerror or str(error)
        else:
            refused = lock.read_refusal()
            if refused:  # the process that held the lock had the file refused: the same file, the same refusal
                raise DataFormatError(refused)
            found = load_folder(folder, discard=True)  # built by another process while this one waited
            if found is not None:
                return _announce(found)
            _remove_stale_staging(folder)
            try:
                unwritable = _build_in_child(annotation_file, folder, version=version, split_folder=split_folder,
                                             federated=federated)  # fmt: skip
            except DataFormatError as error:
                if not isinstance(error, AnnotationCacheError):
                    lock.write_refusal(str(error))
                raise
            if unwritable is None:
                found = load_folder(folder)
                if found is None:
                    raise AnnotationCacheError(
                        f"the annotation cache {folder} was built but cannot be read back; set dataset.cache_dir "
                        "to another folder, or to null to parse the file in every process"
                    )
                return _announce(found)
    # Outside the lock: the processes waiting for it need not wait for this one's parse as well.
    log.warning("cannot write the annotation cache in %s (%s); %s is parsed in memory by this process",
                folder.parent, unwritable, annotation_file.name)  # fmt: skip
    return parse_table(annotation_file, version=version, split_folder=split_folder, federated=federated)


def _announce(
    found: tuple[AnnotationTable, list[dict[str, Any]], list[str]],
) -> tuple[AnnotationTable, list[dict[str, Any]]]:
    """The checks' warnings of the file (dropped degenerate polygons, ...), logged at every use as a parse would."""
    table, categories, warnings = found
    for warning in warnings:
        log.warning("%s", warning)
    return table, categories


def cache_folder(annotation_file: Path, *, cache_dir: Path, version: str, split_folder: str, federated: bool) -> Path:
    """Where the table of this file version lives (see the module docstring)."""
    digest = fingerprint(annotation_file)["sha256"]
    variant = hashlib.sha256(f"{LAYOUT}|{version}|{split_folder}|{federated}".encode()).hexdigest()[:8]
    return Path(cache_dir) / SUBDIR / f"{annotation_file.stem}-{digest[:16]}-{variant}"


class _Lock:
    """The held build lock of one cache folder; its file also carries a refusal of the annotation file, so that the
    processes waiting for it fail at once with the same line instead of parsing the file again, one after another."""

    REFUSED = "refused\t"

    def __init__(self, handle: Any, *, waited: bool) -> None:
        self.handle = handle
        self.waited = waited  # another process held it: a refusal in the file is that process's, of this very file

    def read_refusal(self) -> str | None:
        if not self.waited:  # an old refusal (gol or its checks may have changed since): this process tries again
            return None
        self.handle.seek(0)
        text = self.handle.read()
        return text[len(self.REFUSED) :].strip() or None if text.startswith(self.REFUSED) else None

    def write_refusal(self, message: str) -> None:
        with contextlib.suppress(OSError):
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.write(f"{self.REFUSED}{message}\n")
            self.handle.flush()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[_Lock]:
    with path.open("a+") as handle:
        waited = False
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = True
            log.info("waiting for another process to build the annotation cache %s", path.with_suffix(""))
            started = time.monotonic()
            fcntl.flock(handle, fcntl.LOCK_EX)
            log.info("the other process is done with the annotation cache (waited %.1f s)", time.monotonic() - started)
        try:
            yield _Lock(handle, waited=waited)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_staging(folder: Path) -> None:
    """Staging folders of builders that died mid-write (under the lock, no builder of this folder is alive)."""
    for staging in folder.parent.glob(f"{folder.name}.tmp-*"):
        shutil.rmtree(staging, ignore_errors=True)


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
        how = (f"was killed by signal {-done.returncode}" + (" (out of memory?)" if done.returncode == -9 else "")
               if done.returncode < 0 else f"failed ({lines[-1] if lines else f'exit status {done.returncode}'})")  # fmt: skip
        raise AnnotationCacheError(
            f"building the annotation cache of {annotation_file} {how}; it needs about 8x the file's size in memory "
            "once per node; give the job more memory, or set dataset.cache_dir=null to parse the file in every process"
        )
    log.info("annotation cache of %s built in %.1f s", annotation_file.name, time.monotonic() - started)
    return None


def write_folder(
    folder: Path,
    table: AnnotationTable,
    categories: Sequence[dict[str, Any]],
    source: Path,
    warnings: Sequence[str] = (),
) -> None:
    """Write the table to ``folder`` under a temporary name, then rename it into place (atomic on one file
    system); a folder already in place (another builder won) is kept and this one discarded."""
    staging = folder.with_name(f"{folder.name}.tmp-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}")
    staging.mkdir(parents=True)
    try:
        columns = {}
        for name, array in table.arrays().items():
            np.save(staging / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
            columns[name] = {"dtype": array.dtype.str, "shape": list(array.shape),
                             "bytes": (staging / f"{name}.npy").stat().st_size}  # fmt: skip
        meta = {"layout": LAYOUT, "source": str(source), "categories": list(categories), "columns": columns,
                "warnings": list(warnings)}  # fmt: skip
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


def load_folder(
    folder: Path, *, discard: bool = False
) -> tuple[AnnotationTable, list[dict[str, Any]], list[str]] | None:
    """(table, categories, the checks' warnings) of a complete cache folder, memory-mapped; None when there is none.

    A folder whose content is damaged or incomplete is moved aside and removed when ``discard`` (only under the
    build lock, so that a folder being completed is never taken for a damaged one). A folder that is complete but
    cannot be mapped here (no memory for the mapping, no permission) is never removed: that is refused in one line.
    """
    meta_path = folder / META
    if not meta_path.is_file():
        if discard and folder.exists():  # a folder without its meta.json was never completed
            _discard(folder, "it has no meta.json")
        return None
    try:
        meta = json.loads(meta_path.read_text())
        columns = meta["columns"]
        if meta.get("layout") != LAYOUT or set(columns) != set(AnnotationTable.names()):
            raise ValueError("written by another version of gol")
        arrays = {name: _load_column(folder / f"{name}.npy", columns[name]) for name in AnnotationTable.names()}
        categories, warnings = list(meta["categories"]), [str(w) for w in meta.get("warnings", [])]
    except (ValueError, KeyError, TypeError, FileNotFoundError) as error:  # the content: damaged or incomplete
        if discard:
            _discard(folder, str(error) or type(error).__name__)
        return None
    except OSError as error:  # the content may be fine: this process cannot map it
        raise AnnotationCacheError(
            f"cannot map the annotation cache {folder} ({error.strerror or error}); check the memory limit for "
            "mappings and the folder's permissions, or set dataset.cache_dir=null to parse the file in every process"
        ) from None
    return AnnotationTable(**arrays), categories, warnings


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


class _WarningsKept(logging.Handler):
    """The checks' warnings, kept in the folder's meta.json and logged by every process that uses the table."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _child(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description="build one annotation cache folder")
    parser.add_argument("annotation_file", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--version", choices=VERSIONS, required=True)
    parser.add_argument("--split-folder", required=True)
    parser.add_argument("--federated", action="store_true")
    args = parser.parse_args(argv)
    warnings = _WarningsKept()
    logging.getLogger("gol").addHandler(warnings)
    gc.disable()  # tens of millions of objects that all live until the end: collections would only cost time
    try:
        table, categories = parse_table(args.annotation_file, version=args.version, split_folder=args.split_folder,
                                        federated=args.federated)  # fmt: skip
    except DataFormatError as error:
        sys.stderr.write(f"{error}\n")
        return _DATA_ERROR_EXIT
    try:
        write_folder(args.folder, table, categories, args.annotation_file, warnings.messages)
    except OSError as error:
        sys.stderr.write(f"{error.strerror or error}\n")
        return _UNWRITABLE_EXIT
    return 0


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1:]))
