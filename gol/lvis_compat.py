"""The one compatibility shim for the official LVIS API (``lvis`` 0.5.3, the last release on PyPI).

Every import of lvis's evaluation in ``gol`` goes through this module::

    from gol.lvis_compat import lvis, LVIS, LVISEval, LVISResults

Why it exists:

* ``lvis.eval.LVISEval.accumulate`` calls ``np.cumsum(...).astype(dtype=np.float)``. The ``np.float`` alias was
  deprecated in NumPy 1.20 and removed in 1.24, so on any current NumPy the official evaluation dies with an
  ``AttributeError`` after the expensive per-image matching. ``np.float`` was exactly the builtin ``float``
  (float64), so restoring the alias gives lvis-api its original numbers. The alias is set only when NumPy does
  not have it, and NumPy itself is not pinned.
* ``lvis/__init__.py`` calls ``logging.basicConfig(level=WARN)`` at import, which would configure the root
  logger of whatever program imports ``gol.evaluation``. The root logger's handlers and level are restored
  after the import, so logging stays the host program's choice.
"""

from __future__ import annotations

import logging

import numpy as np

if not hasattr(np, "float"):
    # lvis 0.5.3 uses np.float (removed in NumPy 1.24); it meant the builtin float (float64).
    np.float = float  # type: ignore[attr-defined]

_root = logging.getLogger()
_handlers, _level = list(_root.handlers), _root.level
import lvis  # noqa: E402  (after the alias above)
from lvis import LVIS, LVISEval, LVISResults  # noqa: E402

_root.handlers[:] = _handlers
_root.setLevel(_level)

__all__ = ["LVIS", "LVISEval", "LVISResults", "lvis"]
