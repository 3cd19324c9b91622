"""Where each class lies in image space: the box-counting dimension of its box centres (FRACAL's statistics).

Shape shorthand: M = annotations, K = foreground categories; labels are 1..K (0 = background), index k of a
per-category array is label k + 1. Centres are normalised by their image's width and height, so every image maps
onto the unit square.

For a grid of d x d cells over the unit square (d = 1..G), N_k(d) counts the cells holding at least one centre of
class k; the class's dimension is the least-squares slope of log N_k(d) against log d over the grids with at most
one cell per instance of the class (d^2 <= instances). A class spread uniformly over the image fills every cell
(dimension 2), one on a line d cells (dimension 1). FRACAL (Alexandridis et al., CVPR 2025) uses the box-counting
variant: a slope below 1, or a class with fewer than ``min_instances`` instances, counts as 1.

The statistics are computed once per run from the training annotations and saved beside the run
(``STATS_FILE``), so a later ``gol-eval --run`` calibrates with exactly the numbers training had.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

STATS_FILE = "fracal_stats.json"


def cell_index(coordinate: np.ndarray, cells: int) -> np.ndarray:
    """(M,) coordinates in [0, 1) -> (M,) cell in 0..cells - 1 of a 1-D grid of ``cells`` cells; -1 outside.

    The edges are i * (1 / cells), as the reference computes them, so a centre on an edge falls in the same cell.
    """
    edges = np.arange(cells + 1) * (1.0 / cells)  # (cells + 1,)
    cell = np.searchsorted(edges, coordinate, side="right") - 1  # (M,)
    return np.where((cell >= 0) & (cell < cells), cell, -1)


def occupied_cells(centres: np.ndarray, labels: np.ndarray, *, num_classes: int, cells: int) -> np.ndarray:
    """(K,) int64 N_k(d): cells of the ``cells`` x ``cells`` grid holding at least one centre of each class.

    Args:
        centres: (M, 2) float64 normalised (x, y) box centres.
        labels: (M,) int64 labels in 1..K.
    """
    column = cell_index(centres[:, 0], cells)  # (M,)
    row = cell_index(centres[:, 1], cells)  # (M,)
    inside = (column >= 0) & (row >= 0)
    occupied = np.zeros((num_classes, cells * cells), dtype=bool)  # (K, d * d)
    occupied[labels[inside] - 1, row[inside] * cells + column[inside]] = True
    return occupied.sum(axis=1)  # (K,)


def fractal_dimensions(
    centres: np.ndarray, labels: np.ndarray, *, num_classes: int, grid: int, min_instances: int
) -> np.ndarray:
    """(K,) float64 box-counting dimension of each class's box centres (see the module docstring).

    Args:
        centres: (M, 2) float64 normalised (x, y) box centres.
        labels: (M,) int labels in 1..K.
        num_classes: K.
        grid: G, the finest grid (G x G cells); the reference's 64.
        min_instances: classes with fewer instances get dimension 1 (too few points for a slope); the reference's 4.
    """
    check_box_counting(grid=grid, min_instances=min_instances)
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)  # (M, 2)
    labels = np.asarray(labels, dtype=np.int64)  # (M,)
    instances = np.bincount(labels, minlength=num_classes + 1)[1:]  # (K,)
    sizes = np.arange(1, grid + 1)  # (G,)
    counts = np.stack(
        [occupied_cells(centres, labels, num_classes=num_classes, cells=int(d)) for d in sizes], axis=1
    )  # (K, G)
    # The fit uses the grids with at most one cell per instance; it needs two of them (four instances).
    used = instances[:, None] >= (sizes * sizes)[None, :]  # (K, G)
    log_d = np.log(sizes)[None, :]  # (1, G)
    with np.errstate(divide="ignore"):
        log_n = np.log(counts)  # (K, G); -inf where no centre is inside the grid
    used &= np.isfinite(log_n)
    n_used = used.sum(axis=1)  # (K,)
    weight = used.astype(np.float64)
    mean_x = (weight * log_d).sum(axis=1) / np.maximum(n_used, 1)  # (K,)
    mean_y = np.where(used, log_n, 0.0).sum(axis=1) / np.maximum(n_used, 1)  # (K,)
    dx = np.where(used, log_d - mean_x[:, None], 0.0)  # (K, G)
    dy = np.where(used, log_n - mean_y[:, None], 0.0)  # (K, G)
    var = (dx * dx).sum(axis=1)  # (K,)
    slope = np.where(var > 0, (dx * dy).sum(axis=1) / np.where(var > 0, var, 1.0), 1.0)  # (K,)
    fitted = (instances >= min_instances) & (n_used >= 2)
    return np.where(fitted, np.maximum(slope, 1.0), 1.0)  # (K,)


def check_box_counting(*, grid: int, min_instances: int) -> None:
    """One-line refusal of box-counting settings that cannot give a slope."""
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(
            f"calibration.grid must be an integer of at least 2 (grids 1..grid; FRACAL uses 64), got {grid!r}"
        )
    if isinstance(min_instances, bool) or not isinstance(min_instances, int) or min_instances < 4:
        raise ValueError(
            f"calibration.min_instances must be an integer of at least 4 (a slope needs the 1x1 and 2x2 grids; "
            f"FRACAL uses 4), got {min_instances!r}"
        )


def normalised_centres(boxes: np.ndarray, image_sizes: np.ndarray) -> np.ndarray:
    """(M, 4) xywh boxes in pixels and (M, 2) (height, width) of their images -> (M, 2) centres in image units."""
    height = image_sizes[:, 0].astype(np.float64)
    width = image_sizes[:, 1].astype(np.float64)
    x0 = boxes[:, 0] / width
    y0 = boxes[:, 1] / height
    return np.stack([x0 + boxes[:, 2] / width / 2, y0 + boxes[:, 3] / height / 2], axis=1)  # (M, 2)


@dataclass(frozen=True)
class FracalStats:
    """What FRACAL needs to know about the training split.

    Attributes:
        category_ids: (K,) dataset category ids in label order.
        image_count: (K,) images of the annotation file that hold the class.
        num_images: images listed in the training annotation file (the reference's denominator: all of them).
        fractal_dimension: (K,) box-counting dimension of the class's box centres, in [1, 2].
        grid, min_instances: the box-counting settings they were computed with.
        source: the training annotation file.
    """

    category_ids: tuple[int, ...]
    image_count: tuple[int, ...]
    num_images: int
    fractal_dimension: tuple[float, ...]
    grid: int
    min_instances: int
    source: str

    def __post_init__(self) -> None:
        k = len(self.category_ids)
        if len(self.image_count) != k or len(self.fractal_dimension) != k:
            raise ValueError(
                f"FracalStats: {k} categories but {len(self.image_count)} image counts and "
                f"{len(self.fractal_dimension)} fractal dimensions"
            )
        if self.num_images <= 0:
            raise ValueError(f"FracalStats.num_images must be positive, got {self.num_images}")

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "category_ids": list(self.category_ids),
            "image_count": list(self.image_count),
            "num_images": self.num_images,
            "fractal_dimension": list(self.fractal_dimension),
            "grid": self.grid,
            "min_instances": self.min_instances,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FracalStats:
        return cls(
            category_ids=tuple(int(c) for c in data["category_ids"]),
            image_count=tuple(int(c) for c in data["image_count"]),
            num_images=int(data["num_images"]),
            fractal_dimension=tuple(float(d) for d in data["fractal_dimension"]),
            grid=int(data["grid"]),
            min_instances=int(data["min_instances"]),
            source=str(data["source"]),
        )


def fracal_stats(
    *,
    category_ids: Sequence[int],
    boxes: np.ndarray,
    image_sizes: np.ndarray,
    image_index: np.ndarray,
    labels: np.ndarray,
    num_images: int,
    grid: int,
    min_instances: int,
    source: str,
) -> FracalStats:
    """`FracalStats` of a training split from its annotations.

    Args:
        category_ids: (K,) in label order.
        boxes: (M, 4) float64 xywh boxes of the annotations, in pixels.
        image_sizes: (M, 2) int (height, width) of each annotation's image.
        image_index: (M,) int index of each annotation's image (distinct images per class).
        labels: (M,) int labels in 1..K.
        num_images: images of the annotation file.
    """
    k = len(category_ids)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(labels, dtype=np.int64)
    has_area = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    if not bool(has_area.any()):
        raise ValueError(
            f"calibration=fracal needs box annotations, but {source} has no box with a positive width and height; "
            "use calibration=none with this dataset"
        )
    centres = normalised_centres(boxes, np.asarray(image_sizes).reshape(-1, 2))  # (M, 2)
    dims = fractal_dimensions(centres, labels, num_classes=k, grid=grid, min_instances=min_instances)  # (K,)
    pairs = np.unique(np.asarray(image_index, dtype=np.int64) * (k + 1) + labels)  # distinct (image, label)
    image_count = np.bincount(pairs % (k + 1), minlength=k + 1)[1:]  # (K,)
    return FracalStats(
        category_ids=tuple(int(c) for c in category_ids),
        image_count=tuple(int(c) for c in image_count),
        num_images=int(num_images),
        fractal_dimension=tuple(float(d) for d in dims),
        grid=grid,
        min_instances=min_instances,
        source=source,
    )


def read_stats(path: Path) -> FracalStats:
    """The statistics a run saved (``STATS_FILE``)."""
    try:
        return FracalStats.from_dict(json.loads(Path(path).read_text()))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not a FRACAL statistics file ({error}); delete it to recompute it") from None
