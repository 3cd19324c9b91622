"""Files a run must never leave half-written: one atomic write for checkpoints, records, metrics and configs.

A write goes to a temporary file in the target's folder, is flushed and fsynced, renamed over the target, and the
folder is fsynced so the rename itself survives a crash. A write that fails leaves the previous file as it was. A
full disk or quota (ENOSPC, EDQUOT, or EFBIG from a file-size limit) becomes :class:`DiskFullError`, one line naming
the file and the free space.

A process killed mid-write (SIGKILL, a lost node) leaves its temporary file behind, up to a whole checkpoint in
size; :func:`remove_partial_writes` clears them when the next process takes over the run folder.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

# atomic_write's temporary names: tempfile.mkstemp(prefix=".<name>.", suffix=".tmp") adds 8 of [a-z0-9_].
_PARTIAL = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class DiskFullError(OSError):
    """No room to write a run's file (disk full, quota, or file-size limit); the message is one line."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def _free_space(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**30:.2f} GiB free there"
    except OSError:
        return "free space unknown"


def disk_full(error: OSError, path: Path) -> DiskFullError:
    """The one-line error for a write of ``path`` that ran out of room."""
    reason = "file-size limit reached" if error.errno == errno.EFBIG else os.strerror(error.errno or errno.ENOSPC)
    return DiskFullError(
        error.errno,
        f"cannot write {path}: {reason} ({_free_space(path.parent)}); the previous file is intact. Free space (or "
        "point paths.output_root elsewhere) and rerun the same command: the run resumes from its last checkpoint",
    )


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Recorder:
    """A file whose failed writes are remembered: torch.save reports a failed write as a RuntimeError without the
    OSError (and its errno) behind it."""

    def __init__(self, f: IO[Any]) -> None:
        self.f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.f.flush()


def atomic_write(path: Path, write: Callable[[Any], object], *, binary: bool = False) -> None:
    """Replace ``path`` atomically and durably with what ``write(file)`` writes (bytes when ``binary``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            recorder = _Recorder(f)
            try:
                write(recorder)
            except Exception:
                if recorder.error is not None:
                    raise recorder.error from None
                raise
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_dir(path.parent)
    except OSError as error:
        if error.errno in _FULL:
            raise disk_full(error, path) from None
        raise
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def remove_partial_writes(*folders: Path) -> list[Path]:
    """Delete the temporary files that writes cut short left in ``folders``; returns them (and logs them).

    Only for folders no other process writes to (a claimed run folder): a live write's file looks the same.
    """
    removed = [
        path
        for folder in folders
        if folder.is_dir()
        for path in sorted(folder.iterdir())
        if _PARTIAL.match(path.name) and path.is_file()
    ]
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        log.info("removed %d partial file(s) of writes cut short: %s", len(removed), ", ".join(map(str, removed)))
    return removed
