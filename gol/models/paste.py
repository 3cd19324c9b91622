"""Predicted masks into image pixels as torchvision pastes them: into the whole image, or only inside each box.

Shape shorthand: N = masks, M = side of a predicted mask (28), S = M + 2 (the mask with its one-pixel zero border),
H x W = the image, h_n x w_n = mask n's region (the pixels of its pasted box that lie inside the image).

torchvision (``paste_masks_in_image``) pads each mask to S x S, widens its box by S / M, truncates the box to
integers, resizes the mask bilinearly (``align_corners=False``) to the box's (y1 - y0 + 1, x1 - x0 + 1) pixels and
copies it in, one mask at a time. Bilinear resizing is separable and reads two source pixels along each axis, so
every pasted pixel of a padded mask P is

    rows:    r[y, j] = P[lo_y, j] * a_y + P[hi_y, j] * b_y        (j < S)
    columns: m[y, x] = r[y, lo_x] * a_x + r[y, hi_x] * b_x

with ATen's source taps (lo, hi) and weights (a, b) (:func:`_taps`). Both passes are separate elementwise products
and sums in the compute dtype (float32; float64 for float64 masks), so each pixel's value is fixed by IEEE
arithmetic alone, whatever computes it: the CPU or a GPU, the whole image (:func:`paste_masks`) or the region
only (:func:`paste_in_boxes`) give the same bits. A matrix-product form (``Wy @ P @ Wx^T``) would leave them to
the BLAS kernel's summation order and use of FMA, which change with the shapes. Outside its region a pasted mask
is zero.

Test-time evaluation needs each mask only inside its box: :func:`paste_in_boxes` computes those h_n x w_n values
and never an N x H x W stack (at 640 x 480 with 300 detections, 5M pasted values instead of 92M).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.roi_heads import expand_boxes

# torchvision pads each predicted mask with a one-pixel zero border before pasting it (and widens its box to match).
MASK_PADDING = 1


@dataclass(frozen=True)
class BoxMasks:
    """N masks pasted inside their boxes only; mask n is ``blocks[n]`` on its region and zero elsewhere.

    ``regions``: (N, 4) int64 x0, y0, x1, y1, the image pixels [y0, y1) x [x0, x1) of each pasted box (clipped to
    the image; empty where the box lies outside it). ``blocks``: N tensors (h_n, w_n) in the masks' dtype, each the
    transpose of a contiguous (w_n, h_n) tensor, i.e. column-major, the order of a COCO RLE. ``image_size``: (H, W).
    """

    regions: Tensor
    blocks: tuple[Tensor, ...]
    image_size: tuple[int, int]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 masks are pasted in float64, every other floating dtype in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _taps(
    start: Tensor, length: Tensor, first: Tensor, count: Tensor, src_size: int, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Bilinear taps along one axis of image pixels ``first_n .. first_n + count_n - 1`` of every mask n.

    Mask n is resized from ``src_size`` to ``length_n`` pixels placed at ``start_n`` (``F.interpolate(...,
    mode="bilinear", align_corners=False)``: ATen's source index, clamping and edge rule; index arithmetic in
    float64, which equals ATen's float64 resize to 1e-14 and its float32 one within a few 1e-6).

    Returns flat (T,) tensors over the masks in order (T = sum of ``count``): the owning mask, the source indices
    lo and hi (int64) and their weights a and b in ``dtype``.
    """
    math = torch.float64
    device = start.device
    total = int(count.sum())
    owner = torch.repeat_interleave(torch.arange(count.shape[0], device=device), count, output_size=total)  # (T,)
    begin = torch.cumsum(count, 0) - count  # (N,) first flat position of each mask
    j = torch.arange(total, device=device) + (first - start - begin)[owner]  # (T,) index in the resized mask
    scale = src_size / length.to(math)  # (N,) as ATen: input size / output size
    src = ((j.to(math) + 0.5) * scale[owner] - 0.5).clamp(min=0.0)  # (T,)
    lo = src.floor().to(torch.int64).clamp(max=src_size - 1)  # (T,)
    frac = (src - lo.to(math)).clamp(0.0, 1.0)  # (T,)
    hi = (lo + 1).clamp(max=src_size - 1)  # (T,); at the last index both taps coincide
    return owner, lo, hi, (1.0 - frac).to(dtype), frac.to(dtype)


def paste_in_boxes(masks: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> BoxMasks:
    """Each mask pasted into its box, computed on the box's pixels inside the image only.

    Args:
        masks: (N, 1, M, M) mask probabilities in box coordinates.
        boxes: (N, 4) float xyxy boxes in image pixels.
        image_size: (H, W) of the image.

    The values equal :func:`paste_masks` ``(masks, boxes, image_size)[n, 0, y0:y1, x0:x1]`` bit for bit (see the
    module docstring).
    """
    n, side = masks.shape[0], masks.shape[-1]
    height, width = image_size
    compute = _compute_dtype(masks.dtype)
    src = side + 2 * MASK_PADDING
    corners = expand_boxes(boxes, src / side).to(torch.int64)  # (N, 4), truncated as torchvision does
    box_w = (corners[:, 2] - corners[:, 0] + 1).clamp(min=1)  # (N,)
    box_h = (corners[:, 3] - corners[:, 1] + 1).clamp(min=1)  # (N,)
    x0, y0 = corners[:, 0].clamp(0, width), corners[:, 1].clamp(0, height)  # (N,)
    x1, y1 = (corners[:, 0] + box_w).clamp(0, width), (corners[:, 1] + box_h).clamp(0, height)  # (N,)
    regions = torch.stack([x0, y0, x1, y1], dim=1)  # (N, 4)
    if n == 0:
        return BoxMasks(regions, (), (height, width))
    heights, widths = y1 - y0, x1 - x0  # (N,)
    row_owner, row_lo, row_hi, row_a, row_b = _taps(corners[:, 1], box_h, y0, heights, src, compute)
    _, col_lo, col_hi, col_a, col_b = _taps(corners[:, 0], box_w, x0, widths, src, compute)
    padded = F.pad(masks[:, 0].to(compute), (MASK_PADDING,) * 4).reshape(n * src, src)  # (N * S, S) mask rows
    first = padded.index_select(0, row_owner * src + row_lo).mul_(row_a[:, None])  # (sum h_n, S)
    rows = first.add_(padded.index_select(0, row_owner * src + row_hi).mul_(row_b[:, None]))  # (sum h_n, S)
    columns = rows.T.contiguous()  # (S, sum h_n): column j of every region row, mask after mask
    blocks = []
    for part, lo, hi, a, b in zip(
        columns.split(heights.tolist(), dim=1),  # (S, h_n) each
        col_lo.split(widths.tolist()),  # (w_n,) each, and the three below
        col_hi.split(widths.tolist()),
        col_a[:, None].split(widths.tolist()),  # (w_n, 1) each, and the one below
        col_b[:, None].split(widths.tolist()),
    ):
        block = part.index_select(0, lo).mul_(a).add_(part.index_select(0, hi).mul_(b))  # (w_n, h_n)
        blocks.append(block.to(masks.dtype).T)  # (h_n, w_n), column-major
    return BoxMasks(regions, tuple(blocks), (height, width))


def paste_masks(masks: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """torchvision's ``paste_masks_in_image`` (equal up to float rounding): every mask in a full-size image.

    Args:
        masks: (N, 1, M, M) mask probabilities in box coordinates.
        boxes: (N, 4) float xyxy boxes in image pixels.
        image_size: (H, W) of the image.

    Returns:
        (N, 1, H, W) in the dtype of ``masks``, zero outside each (widened, integer) box: the regions of
        :func:`paste_in_boxes` written into zeros.

    One short step per mask (two gathers, two products, a sum, a copy): cheap on a CPU, a few kernel launches per
    mask on a GPU, where torchvision's loop costs about as many.
    """
    height, width = image_size
    out = masks.new_zeros((masks.shape[0], 1, height, width))  # (N, 1, H, W)
    pasted = paste_in_boxes(masks, boxes, image_size)
    for i, ((x0, y0, x1, y1), block) in enumerate(zip(pasted.regions.tolist(), pasted.blocks)):
        out[i, 0, y0:y1, x0:x1] = block
    return out
