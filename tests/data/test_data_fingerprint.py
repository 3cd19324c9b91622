"""Annotation fingerprints: hashed once per file version, cached beside the file or in the user cache, never fatal."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest

from gol import fingerprint as fp


@pytest.fixture
def user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "gol" / "fingerprints"


@pytest.fixture
def annotations(tmp_path: Path) -> Path:
    folder = tmp_path / "lvis"
    folder.mkdir()
    path = folder / "lvis_v1_val.json"
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    return path


def _hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every full-content hash computed from now on."""
    calls: list[Path] = []
    real = fp.content_hash

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(fp, "content_hash", counting)
    return calls


def test_the_digest_is_the_files_sha256_and_the_sidecar_sits_beside_it(annotations: Path, user_cache: Path) -> None:
    entry = fp.fingerprint(annotations)
    stat = annotations.stat()
    assert entry == {
        "path": str(annotations.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": hashlib.sha256(annotations.read_bytes()).hexdigest(),
    }
    sidecar = annotations.with_name(annotations.name + ".fingerprint.json")
    assert json.loads(sidecar.read_text()) == entry
    assert not user_cache.exists()


def test_a_cached_hash_is_reused_until_the_file_changes(
    annotations: Path, user_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = fp.fingerprint(annotations)
    calls = _hashes(monkeypatch)
    assert fp.fingerprint(annotations) == first and calls == []  # cache hit: no hashing
    annotations.write_text(json.dumps({"images": [{"id": 1}], "annotations": [], "categories": []}))
    changed = fp.fingerprint(annotations)
    assert len(calls) == 1 and changed["sha256"] != first["sha256"]
    assert changed["sha256"] == hashlib.sha256(annotations.read_bytes()).hexdigest()
    # Same size, new content and mtime (rewritten in place): the mtime alone invalidates the cache.
    annotations.write_text(annotations.read_text().replace('"id": 1', '"id": 2'))
    os.utime(annotations, ns=(changed["mtime_ns"] + 10**9, changed["mtime_ns"] + 10**9))
    assert fp.fingerprint(annotations)["sha256"] == hashlib.sha256(annotations.read_bytes()).hexdigest()
    assert len(calls) == 2


def test_an_unwritable_folder_caches_in_the_user_cache(
    annotations: Path, user_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A folder in the sidecar's place stands for a folder that refuses writes (chmod does not stop root).
    blocked = annotations.with_name(annotations.name + ".fingerprint.json")
    blocked.mkdir()
    entry = fp.fingerprint(annotations)
    (cached,) = user_cache.iterdir()
    assert cached.name.startswith(annotations.name) and json.loads(cached.read_text()) == entry
    calls = _hashes(monkeypatch)
    assert fp.fingerprint(annotations) == entry and calls == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_caches_in_the_user_cache(annotations: Path, user_cache: Path) -> None:
    annotations.parent.chmod(0o555)
    try:
        entry = fp.fingerprint(annotations)
    finally:
        annotations.parent.chmod(0o755)
    assert [json.loads(p.read_text()) for p in user_cache.iterdir()] == [entry]
    assert sorted(p.name for p in annotations.parent.iterdir()) == [annotations.name]


def test_no_writable_cache_anywhere_still_gives_the_fingerprint(
    annotations: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    annotations.with_name(annotations.name + ".fingerprint.json").mkdir()
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    with caplog.at_level(logging.WARNING, logger="gol.fingerprint"):
        entry = fp.fingerprint(annotations)
    assert entry["sha256"] == hashlib.sha256(annotations.read_bytes()).hexdigest()
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"could not cache the fingerprint of {annotations.resolve()} (")
    assert "\n" not in warning


def test_a_torn_or_foreign_sidecar_is_ignored(annotations: Path, user_cache: Path) -> None:
    sidecar = annotations.with_name(annotations.name + ".fingerprint.json")
    sidecar.write_text('{"size": ')
    digest = hashlib.sha256(annotations.read_bytes()).hexdigest()
    assert fp.fingerprint(annotations)["sha256"] == digest
    stat = annotations.stat()
    sidecar.write_text(json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "md5": "x"}))
    assert fp.fingerprint(annotations)["sha256"] == digest
