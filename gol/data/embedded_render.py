"""Drawing the embedded dataset's objects: shape polygons, colours, textures and their exact masks.

Shape shorthand: H x W = image height x width; images are (H, W, 3) uint8 arrays here (PIL layout).

Every object is painted exactly on the pixels of its own polygon's pycocotools rasterisation, the same call that
decodes its annotation, and objects never overlap, so each annotation's mask is exactly the object's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pycocotools.mask as mask_utils

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "diamond")
COLOURS: dict[str, tuple[int, int, int]] = {  # saturated and far apart, so colour alone is easy to read
    "red": (215, 40, 40),
    "green": (40, 160, 60),
    "blue": (45, 80, 210),
    "yellow": (235, 200, 30),
    "magenta": (190, 50, 190),
    "cyan": (30, 180, 200),
}
TEXTURES: tuple[str, ...] = ("solid", "striped", "dotted")
SHADE = 0.4  # stripes and dots use the object's colour darkened, so the colour stays readable
STRIPE_PERIOD = 6  # px; horizontal stripes, so a horizontal flip keeps the texture
DOT_PERIOD = 6  # px; 3 x 3 dots on a 6 px grid
DOT_SIZE = 3
CIRCLE_VERTICES = 32
POLYGON_DECIMALS = 2  # coordinates are rounded before rasterising, so the JSON polygon decodes to the painted mask


@dataclass(frozen=True)
class CategoryLook:
    """The appearance of one category: shape x colour x texture."""

    shape: str
    colour: str
    texture: str

    @property
    def name(self) -> str:
        return f"{self.colour}_{self.texture}_{self.shape}"

    @property
    def definition(self) -> str:
        return f"a {self.colour} {self.shape}, {self.texture}"


def category_looks(num_shapes: int, num_colours: int, num_textures: int) -> list[CategoryLook]:
    """All shape x colour x texture combinations, in a fixed order (category id = position + 1)."""
    limits = {
        "num_shapes": (num_shapes, len(SHAPES)),
        "num_colours": (num_colours, len(COLOURS)),
        "num_textures": (num_textures, len(TEXTURES)),
    }
    for name, (value, most) in limits.items():
        if not 1 <= value <= most:
            raise ValueError(f"{name} must lie in 1..{most}, got {value}")
    colours = list(COLOURS)[:num_colours]
    return [
        CategoryLook(shape, colour, texture)
        for shape in SHAPES[:num_shapes]
        for colour in colours
        for texture in TEXTURES[:num_textures]
    ]


def _unit_polygon(shape: str) -> np.ndarray:
    """(V, 2) vertices of ``shape`` inside the unit square [0, 1]^2, x right, y down."""
    if shape == "circle":
        a = np.linspace(0.0, 2.0 * np.pi, CIRCLE_VERTICES, endpoint=False)
        return np.stack([0.5 + 0.5 * np.cos(a), 0.5 + 0.5 * np.sin(a)], axis=1)
    if shape == "square":
        return np.array([[0.08, 0.08], [0.92, 0.08], [0.92, 0.92], [0.08, 0.92]])
    if shape == "triangle":
        return np.array([[0.5, 0.0], [1.0, 1.0], [0.0, 1.0]])
    if shape == "star":
        a = -np.pi / 2 + np.arange(10) * np.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, 0.5, 0.22)
        return np.stack([0.5 + radius * np.cos(a), 0.55 + radius * np.sin(a)], axis=1)
    if shape == "cross":
        lo, hi = 1.0 / 3.0, 2.0 / 3.0
        return np.array(
            [
                [lo, 0],
                [hi, 0],
                [hi, lo],
                [1, lo],
                [1, hi],
                [hi, hi],
                [hi, 1],
                [lo, 1],
                [lo, hi],
                [0, hi],
                [0, lo],
                [lo, lo],
            ],
            dtype=np.float64,
        )
    if shape == "diamond":
        return np.array([[0.5, 0.0], [1.0, 0.5], [0.5, 1.0], [0.0, 0.5]])
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def object_polygon(shape: str, *, x: float, y: float, size: float) -> list[float]:
    """Flat COCO polygon ``[x1, y1, x2, y2, ...]`` of ``shape`` filling the square at (x, y) of side ``size``."""
    vertices = _unit_polygon(shape) * size + np.array([x, y])  # (V, 2)
    return [round(float(v), POLYGON_DECIMALS) for v in vertices.reshape(-1)]


def polygon_mask(polygon: list[float], *, height: int, width: int) -> np.ndarray:
    """(H, W) bool pixels of one polygon, rasterised exactly as an annotation's mask is decoded."""
    rle = mask_utils.merge(mask_utils.frPyObjects([polygon], height, width))
    return mask_utils.decode(rle).astype(bool)


def background(rng: np.random.Generator, *, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 light grey with a gentle gradient: plain, so it compresses and never looks like an object."""
    level = rng.uniform(175.0, 230.0)
    gx, gy = rng.uniform(-12.0, 12.0, size=2)
    ys = np.linspace(-0.5, 0.5, height)[:, None]
    xs = np.linspace(-0.5, 0.5, width)[None, :]
    grey = np.clip(level + gx * xs + gy * ys, 0, 255)  # (H, W)
    tint = rng.uniform(-4.0, 4.0, size=3)  # slight per-image tint, still far from any object colour
    return np.clip(grey[..., None] + tint, 0, 255).astype(np.uint8)  # (H, W, 3)


def paint(image: np.ndarray, mask: np.ndarray, look: CategoryLook, *, x0: int, y0: int) -> None:
    """Paint ``look`` on the pixels of ``mask`` in place; textures are anchored at the object's corner (x0, y0)."""
    colour = np.array(COLOURS[look.colour], dtype=np.float64)
    dark = (colour * SHADE).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    if look.texture == "solid":
        is_dark = np.zeros(ys.shape, dtype=bool)
    elif look.texture == "striped":
        is_dark = ((ys - y0) // (STRIPE_PERIOD // 2)) % 2 == 1
    elif look.texture == "dotted":
        is_dark = (((ys - y0) % DOT_PERIOD) < DOT_SIZE) & (((xs - x0) % DOT_PERIOD) < DOT_SIZE)
    else:
        raise ValueError(f"unknown texture {look.texture!r}; expected one of {TEXTURES}")
    image[ys, xs] = np.where(is_dark[:, None], dark, colour.astype(np.uint8))
