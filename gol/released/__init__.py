"""The released configs behind the paper's tables: every setting of every paper cell, as data.

Each cell of a paper table (an experiment of ``experiments/`` and one choice per swept group) maps to the
configuration file its published number came from (kostas1515/GOL, mmdetection 2.21; the Federated-loss runs in
kostas1515/mmdetection_v2.21_dev; Seesaw in open-mmlab/mmdetection), and each setting of that file to the ``gol``
config key and value that reproduce it. Three uses, one source:

* ``docs/fidelity.md`` is rendered from it (``python -m gol.released``; a test keeps the file current);
* a test composes every paper cell and checks each key holds the listed value, so experiments cannot drift;
* a run records the settings it changed away from its released config (``deviations``), and ``gol-tables``
  marks such rows, so a table never passes an ablation off as the paper's cell.

A setting ``gol`` cannot reproduce is listed with ``matched=False`` and the reason; it is never a deviation.

Modules: ``cell`` (a setting, a cell, comparing a config with it), ``common`` (the settings the released
mmdetection configs share, by part), ``tables`` (the cells of each paper table), ``markdown`` (docs/fidelity.md).
"""

from gol.released.cell import ReleasedCell, Setting
from gol.released.markdown import render_markdown
from gol.released.tables import find_cell, released_cells

__all__ = ["ReleasedCell", "Setting", "find_cell", "released_cells", "render_markdown"]
