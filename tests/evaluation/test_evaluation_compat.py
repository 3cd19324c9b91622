"""The lvis-api compatibility shim: the np.float alias, the host's logging left alone, one import path."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import gol.evaluation


def test_np_float_alias_restored_for_lvis() -> None:
    from gol.lvis_compat import lvis

    assert np.float is float  # type: ignore[attr-defined]
    assert lvis.LVISEval.__module__ == "lvis.eval"


def test_import_leaves_root_logging_alone() -> None:
    code = (
        "import logging; from gol.lvis_compat import LVISEval; "
        "root = logging.getLogger(); assert not root.handlers and root.level == logging.WARNING, root.handlers"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_alias_kept_when_numpy_has_it() -> None:
    code = (
        "import numpy as np; sentinel = object(); np.float = sentinel; "
        "import gol.lvis_compat; assert np.float is sentinel"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_every_lvis_import_goes_through_the_shim() -> None:
    package = Path(gol.evaluation.__file__).parents[1]
    offenders = [
        str(path)
        for path in package.rglob("*.py")
        if path.name != "lvis_compat.py"
        and re.search(r"^\s*(from lvis\b|import lvis\b)", path.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert offenders == []
