"""Fingerprints of the annotation files a run reads: size, modification time and a cached content hash.

Two runs can only be averaged or compared when they read the same annotations; the run record keeps each file's
fingerprint so that ``gol-tables`` can tell. The full-content hash (SHA-256, streamed; ``sha256sum FILE`` gives the
same digest) is computed once per file version and cached in a small JSON sidecar keyed by (size, mtime_ns):

- beside the file, ``<file>.fingerprint.json``, so every user of a shared data folder reuses it;
- else (a read-only folder, such as a shared LVIS copy) under ``$XDG_CACHE_HOME/gol/fingerprints/``
  (``~/.cache/gol/fingerprints/``), named after the file and a hash of its absolute path.

A file rewritten in place changes its size or mtime and is hashed again. A cache that cannot be written anywhere
costs a hash at the next run, never the run itself. Torch-free, so the tables and launchers can use it.

The embedded dataset is fingerprinted like any other: its generated JSON files are a pure function of the
generator's parameters and version (``gol.data.embedded``), so the same parameters give the same digest on every
machine, and a generator change that alters the annotations changes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from gol.files import atomic_write

log = logging.getLogger(__name__)

ALGORITHM = "sha256"
SIDECAR_SUFFIX = ".fingerprint.json"
_CHUNK = 1 << 20  # bytes read per update while hashing


def user_cache_dir() -> Path:
    """Where sidecars go when a file's own folder cannot take them (XDG base directory layout)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gol" / "fingerprints"


def sidecar_paths(path: Path) -> tuple[Path, Path]:
    """The two places the cached hash of ``path`` (absolute) may live: beside it, then in the user cache."""
    tag = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return path.with_name(path.name + SIDECAR_SUFFIX), user_cache_dir() / f"{path.name}.{tag}.json"


def content_hash(path: Path) -> str:
    """The hex SHA-256 of the file's bytes, read in 1 MiB chunks (constant memory for a 1 GB LVIS file)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(path: Path | str) -> dict[str, Any]:
    """``{"path", "size", "mtime_ns", "sha256"}`` of a file; the hash from its sidecar when that matches the
    file's size and mtime, else computed and cached (beside the file, else in the user cache, else nowhere)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    places = sidecar_paths(path)
    for place in places:
        cached = _read(place)
        if cached and all(cached.get(k) == v for k, v in key.items()) and isinstance(cached.get(ALGORITHM), str):
            return {"path": str(path), **key, ALGORITHM: cached[ALGORITHM]}
    digest = content_hash(path)
    after = path.stat()
    entry = {"path": str(path), **key, ALGORITHM: digest}
    if (after.st_size, after.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
        log.warning("%s changed while it was hashed; its fingerprint is not cached", path)
        return entry
    _store(entry, places)
    return entry


def _read(place: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(place.read_text())
    except (OSError, ValueError):
        return None  # absent, unreadable, or torn: hash again
    return data if isinstance(data, dict) else None


def _store(entry: dict[str, Any], places: tuple[Path, ...]) -> None:
    text = json.dumps(entry, indent=2) + "\n"
    failures = []
    for place in places:
        try:
            atomic_write(place, lambda f: f.write(text))
        except OSError as error:
            failures.append(f"{place.parent}: {error.strerror or error}")
            continue
        log.debug("cached the fingerprint of %s in %s", entry["path"], place)
        return
    log.warning("could not cache the fingerprint of %s (%s); it is hashed again at the next run",
                entry["path"], "; ".join(failures))  # fmt: skip
