"""Instance geometry of a generated LVIS-sized set: polygons of LVIS-like complexity, their boxes and areas.

Shape shorthand: n = annotations of a chunk, Q = polygons (1-3 per annotation), T = points (15-30 per polygon, so
30-60 numbers, as LVIS's polygons). Each polygon is a star-shaped loop around the centre of its box (the first
polygon of an annotation spans the annotation's box, further parts sit inside it); sizes are log-uniform, so small,
medium and large objects all occur. Coordinates carry two decimals, as in LVIS files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PARTS = (1, 2, 3)
PART_PROB = (0.75, 0.18, 0.07)  # polygons per annotation
POINTS = (15, 30)  # points per polygon, inclusive
SIDE = (4.0, 420.0)  # object side length (pixels), log-uniform


@dataclass(frozen=True)
class Polygons:
    """The polygons of n annotations, flat."""

    coords: np.ndarray  # (2T,) float64, x0, y0, x1, y1, ... of every polygon in turn
    polygon_starts: np.ndarray  # (Q + 1,) int64, offsets into coords
    annotation_starts: np.ndarray  # (n + 1,) int64, offsets into the polygons
    bbox: np.ndarray  # (n, 4) float64 [x, y, width, height] around the annotation's points
    area: np.ndarray  # (n,) float64, the polygons' areas summed (shoelace)

    def segmentations(self) -> list[list[list[float]]]:
        """Per annotation, its polygons as lists of numbers (the JSON ``segmentation``)."""
        flat = self.coords.tolist()
        starts = self.polygon_starts.tolist()
        polys = [flat[starts[q] : starts[q + 1]] for q in range(len(starts) - 1)]
        ann = self.annotation_starts.tolist()
        return [polys[ann[i] : ann[i + 1]] for i in range(len(ann) - 1)]


def draw_polygons(rng: np.random.Generator, n: int, *, height: int, width: int) -> Polygons:
    """Polygons, boxes and areas of ``n`` annotations in a ``height`` x ``width`` image."""
    side = np.exp(rng.uniform(np.log(SIDE[0]), np.log(SIDE[1]), size=n))  # (n,)
    aspect = np.sqrt(np.exp(rng.normal(0.0, 0.45, size=n)))  # (n,)
    w, h = np.clip(side * aspect, 2.0, width - 1.0), np.clip(side / aspect, 2.0, height - 1.0)
    x, y = rng.random(n) * (width - w), rng.random(n) * (height - h)
    parts = rng.choice(PARTS, size=n, p=PART_PROB)  # (n,)
    owner = np.repeat(np.arange(n), parts)  # (Q,)
    first = np.concatenate(([0], np.cumsum(parts)[:-1]))  # (n,) index of each annotation's first polygon
    sub = np.ones(owner.size, dtype=bool)
    sub[first] = False  # parts after the first are smaller boxes inside the annotation's box
    frac = np.where(sub[:, None], rng.uniform(0.2, 0.5, size=(owner.size, 2)), 1.0)  # (Q, 2)
    pw, ph = w[owner] * frac[:, 0], h[owner] * frac[:, 1]
    px0 = x[owner] + rng.random(owner.size) * (w[owner] - pw)
    py0 = y[owner] + rng.random(owner.size) * (h[owner] - ph)
    k = rng.integers(POINTS[0], POINTS[1] + 1, size=owner.size)  # (Q,)
    starts = np.concatenate(([0], np.cumsum(k)))  # (Q + 1,)
    poly = np.repeat(np.arange(owner.size), k)  # (T,)
    step = np.arange(poly.size) - starts[poly]  # (T,) index of the point in its polygon
    angle = 2 * np.pi * (step + rng.uniform(0.0, 0.8, poly.size)) / k[poly]  # increasing: a simple loop
    radius = 0.5 * rng.uniform(0.55, 1.0, poly.size)
    xs = np.round(np.clip(px0[poly] + pw[poly] * (0.5 + radius * np.cos(angle)), 0, width), 2)  # (T,)
    ys = np.round(np.clip(py0[poly] + ph[poly] * (0.5 + radius * np.sin(angle)), 0, height), 2)  # (T,)
    coords = np.empty(2 * xs.size)
    coords[0::2], coords[1::2] = xs, ys

    ann_points = starts[first]  # (n,) first point of each annotation
    x_min, x_max = np.minimum.reduceat(xs, ann_points), np.maximum.reduceat(xs, ann_points)
    y_min, y_max = np.minimum.reduceat(ys, ann_points), np.maximum.reduceat(ys, ann_points)
    bbox = np.round(np.stack([x_min, y_min, x_max - x_min, y_max - y_min], axis=1), 2)  # (n, 4)
    following = np.arange(1, poly.size + 1)
    following[starts[1:] - 1] = starts[:-1]  # each polygon's last point closes onto its first
    cross = xs * ys[following] - xs[following] * ys  # (T,)
    area = np.add.reduceat(np.abs(np.add.reduceat(cross, starts[:-1])) / 2, first)  # (n,)
    return Polygons(
        coords=coords,
        polygon_starts=2 * starts,
        annotation_starts=np.concatenate((first, [owner.size])),
        bbox=bbox,
        area=np.round(area, 2),
    )
