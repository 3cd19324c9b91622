"""docs/fidelity.md, rendered from the released-config table (``python -m gol.released > docs/fidelity.md``)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from gol.released.cell import ReleasedCell, Setting, show_value
from gol.released.common import DEV, GOL, MMDET
from gol.released.tables import released_cells


def _rows(settings: Iterable[Setting]) -> list[str]:
    rows = []
    for s in settings:
        if s.matched and not s.key:
            rows.append(f"| {s.official} | (always) | | yes |")
        elif s.matched:
            rows.append(f"| {s.official} | `{s.key}` | `{show_value(s.value)}` | yes |")
        else:
            rows.append(f"| {s.official} | (none) | | no: {s.why} |")
    return rows


def render_markdown() -> str:
    """docs/fidelity.md: per table, the settings all its cells share, then each cell's own."""
    out = [
        "# Fidelity: the paper's cells against the released configs",
        "",
        "Generated from `gol/released/` by `python -m gol.released > docs/fidelity.md` (a test keeps it current,",
        "and another composes every cell and checks each `gol` value below). Sources: "
        f"{GOL} (mmdetection 2.21), {DEV} (Federated loss), {MMDET} (bases, Seesaw).",
        "These values are what `variant=paper` (every experiment's default) composes; `variant=improved` changes",
        "only the keys the README lists. A run that changes a matched setting records it as a deviation.",
        "",
    ]
    by_table: dict[str, list[ReleasedCell]] = {}
    for cell in released_cells():
        by_table.setdefault(cell.experiment, []).append(cell)
    for table, cells in by_table.items():
        shared = [s for s in cells[0].settings if all(s in c.settings for c in cells)]
        out += [f"## experiment={table}", "", "Settings of every cell:", "",
                "| released config | gol key | gol value | matched |", "|---|---|---|---|", *_rows(shared), ""]  # fmt: skip
        for cell in cells:
            own = [s for s in cell.settings if s not in shared]
            source = f"`{cell.config}`" if cell.config else "**no released config**"
            out += [
                f"### {cell.label}",
                "",
                f"Released config: {source}." + (f" {cell.note}." if cell.note else ""),
                "",
            ]
            if own:
                out += ["| released config | gol key | gol value | matched |", "|---|---|---|---|", *_rows(own), ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print docs/fidelity.md."""
    del argv
    sys.stdout.write(render_markdown())
    return 0
