"""GPU-hours a sweep will cost, from each cell's schedule and its detector's measured seconds per iteration.

cost(cell) = iterations x seconds_per_iteration x GPUs; the sweep costs the sum over its cells. Seconds per
iteration depend on the detector and the GPU model, so they are configured per detector (measured once on the
target GPUs) rather than guessed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CellCost:
    """One cell of a sweep: ``name`` is its readable override string (``loss=eql activation=gumbel``)."""

    name: str
    iterations: int
    seconds_per_iteration: float
    gpus: int  # per job; 0 for a CPU job (it costs wall hours, no GPU hours)

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.seconds_per_iteration < 0 or self.gpus < 0:
            raise ValueError(
                f"cell '{self.name}': iterations ({self.iterations}), seconds_per_iteration "
                f"({self.seconds_per_iteration}) and gpus ({self.gpus}) must be >= 0; "
                f"fix the schedule, hydra.launcher.seconds_per_iter or the GPU request"
            )

    @property
    def wall_hours(self) -> float:
        return self.iterations * self.seconds_per_iteration / 3600.0

    @property
    def gpu_hours(self) -> float:
        return self.wall_hours * self.gpus


def gpu_hours_table(cells: Sequence[CellCost]) -> str:
    """Fixed-width table, one row per cell, then the total (its wall hours: the cells one after another)."""
    header = ("cell", "iterations", "s/iter", "GPUs", "wall h", "GPU h")
    rows = [
        (
            c.name,
            f"{c.iterations:,}",
            f"{c.seconds_per_iteration:.3g}",
            str(c.gpus),
            f"{c.wall_hours:.1f}",
            f"{c.gpu_hours:.1f}",
        )
        for c in cells
    ]
    rows.append(
        (
            f"total ({len(cells)} cells)",
            f"{sum(c.iterations for c in cells):,}",
            "",
            "",
            f"{sum(c.wall_hours for c in cells):.1f}",
            f"{sum(c.gpu_hours for c in cells):.1f}",
        )
    )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        first = row[0].ljust(widths[0])
        return "  ".join([first, *(v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True))]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in rows[:-1]), rule, fmt(rows[-1])])
