"""Compressed RLEs of masks that are zero outside a box, built from the box alone (no full-image mask is made).

Shape shorthand: N = masks, H x W = the image, h_n x w_n = mask n's region (its box's pixels inside the image),
T = run starts of all masks.

A COCO RLE walks the image column after column (pixel (y, x) at index x * H + y) and alternates runs of zeros and
ones, zeros first; ``counts`` are the run lengths. Outside its region a mask is zero, so its runs start where a
region pixel differs from the one above it, or at the top or just below the bottom of a region column where the
pixel differs from the zero outside. Written column by column with a zero above and below each column, all
regions of an image go into one buffer, and one comparison of neighbours finds every run start of every mask.
Only a region spanning whole columns (h_n = H) lets a run go on into the next column; there the end of one run
and the start of the next fall on the same index and both go. pycocotools then compresses the counts
(``frPyObjects``, the same string ``encode`` writes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pycocotools.mask as mask_utils


def encode_in_boxes(
    columns: Sequence[np.ndarray], regions: np.ndarray, image_size: tuple[int, int], *, threshold: float
) -> list[bytes]:
    """pycocotools' compressed counts of N masks ``> threshold``, each known on its region only.

    Args:
        columns: N arrays (w_n, h_n): mask n's values on its region, column by column (the region's transpose).
        regions: (N, 4) int x0, y0, x1, y1 with 0 <= x0 <= x1 <= W and 0 <= y0 <= y1 <= H; mask n is zero
            outside [y0, y1) x [x0, x1).
        image_size: (H, W).
        threshold: a pixel is in the mask when its value is above it.

    Returns:
        N byte strings, equal to ``pycocotools.mask.encode`` of the full (H, W) masks.
    """
    height, width = image_size
    n = len(columns)
    if n == 0:
        return []
    x0, y0 = regions[:, 0].astype(np.int64), regions[:, 1].astype(np.int64)  # (N,)
    heights = regions[:, 3].astype(np.int64) - y0  # (N,)
    stride = heights + 2  # (N,) a region column between its two zeros
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum((regions[:, 2] - regions[:, 0]) * stride, out=offsets[1:])
    buffer = np.zeros(int(offsets[-1]), np.bool_)  # every padded column of every region, mask after mask
    for i, values in enumerate(columns):
        if values.size:
            inside = buffer[offsets[i] : offsets[i + 1]].reshape(values.shape[0], -1)[:, 1:-1]  # (w_n, h_n)
            np.greater(values, threshold, out=inside)
    starts = np.flatnonzero(buffer[1:] != buffer[:-1]) + 1  # (T,) buffer positions where a run starts
    per_mask = np.diff(np.searchsorted(starts, offsets))  # (N,) run starts in each region
    owner = np.repeat(np.arange(n), per_mask)  # (T,)
    column, row = np.divmod(starts - np.repeat(offsets[:-1], per_mask), np.repeat(stride, per_mask))  # (T,)
    # Row 0 is the zero above a column: row r is image row y0 + r - 1.
    index = column * height + row + np.repeat(x0 * height + y0 - 1, per_mask)  # (T,) in the column-major image
    # A full-height region: a run ending at the foot of a column goes on at the top of the next one; and a run of
    # ones reaching the image's last pixel ends with the image.
    kept = index < height * width  # (T,)
    joined = np.flatnonzero((index[1:] == index[:-1]) & (owner[1:] == owner[:-1]))
    kept[joined] = kept[joined + 1] = False
    if not kept.all():
        index, owner = index[kept], owner[kept]
        per_mask = np.bincount(owner, minlength=n)
    # Each mask's run boundaries 0, starts..., H * W, mask after mask; their differences are its counts.
    first = np.zeros(n + 1, np.int64)
    np.cumsum(per_mask + 2, out=first[1:])
    bounds = np.full(int(first[-1]), height * width, np.int64)
    bounds[first[:-1]] = 0
    bounds[np.arange(index.size) + 2 * owner + 1] = index  # mask i's starts follow its 0 at first[i]
    counts = np.diff(bounds).astype(np.uint32)  # the last of each mask's is junk (H * W to the next mask's 0)
    rles = mask_utils.frPyObjects(
        [
            {"size": [height, width], "counts": counts[a : b - 1]}
            for a, b in zip(first[:-1].tolist(), first[1:].tolist())
        ],
        height,
        width,
    )
    return [rle["counts"] for rle in rles]
