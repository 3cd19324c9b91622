"""The detector's input transform: normalise, shorter-side resize, pad; and the way back to image coordinates.

Shape shorthand: C = 3 colour channels, H x W = an input image, H' x W' = after resizing, N = instances,
M = side of a predicted mask (28), S = M + 2 (the mask with its one-pixel zero border).

Resizing runs inside the model (on its device), as in torchvision, so datasets hand over images at their own
size and predictions come back in those coordinates (``postprocess`` rescales boxes and pastes masks, the latter
with :func:`paste_masks`, a batched equivalent of torchvision's per-mask loop). The paper's recipe (paper-notes
section 2): shorter side drawn from {640, ..., 800} while training, 800 at test, longer side capped at 1333,
mean/std normalisation, padding to a multiple of 32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.detection.roi_heads import expand_boxes
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes, resize_keypoints

# ImageNet statistics on [0, 1] RGB, the same numbers as mmdet's 123.675/58.395 ... on [0, 255].
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
# Padding multiple: the coarsest FPN stride of every detector here.
SIZE_DIVISIBLE = 32
# torchvision pads each predicted mask with a one-pixel zero border before pasting it (and widens its box to match).
MASK_PADDING = 1


def _paste_weights(start: Tensor, length: Tensor, size: int, src_size: int, dtype: torch.dtype) -> Tensor:
    """(N, size, S) bilinear weights that resize a length-S signal to ``length`` pixels placed at ``start``.

    Row p of mask n holds the weights of output pixel p: ``F.interpolate(..., mode="bilinear",
    align_corners=False)`` to ``length[n]`` pixels (same source index, clamping and edge rule as ATen), shifted
    by ``start[n]``; pixels outside ``[start, start + length)`` and outside ``[0, size)`` get no weight.
    """
    # Index arithmetic in float64: equal to ATen's float64 resize to 1e-14, and within a few 1e-6 of its float32 one.
    math = torch.float64
    j = torch.arange(size, device=start.device)[None, :] - start[:, None]  # (N, size) index in the resized mask
    inside = (j >= 0) & (j < length[:, None])  # (N, size)
    scale = src_size / length.to(math)  # (N,) as ATen: input size / output size
    src = ((j.to(math) + 0.5) * scale[:, None] - 0.5).clamp(min=0.0)  # (N, size)
    lo = src.floor().to(torch.int64).clamp(max=src_size - 1)  # (N, size)
    frac = (src - lo.to(math)).clamp(0.0, 1.0)  # (N, size)
    hi = (lo + 1).clamp(max=src_size - 1)  # (N, size); at the last index both taps coincide
    weights = torch.zeros(*j.shape, src_size, device=start.device, dtype=math)  # (N, size, S)
    weights.scatter_add_(2, lo[..., None], torch.where(inside, 1.0 - frac, 0.0)[..., None])
    weights.scatter_add_(2, hi[..., None], torch.where(inside, frac, 0.0)[..., None])
    return weights.to(dtype)


def paste_masks(masks: Tensor, boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """torchvision's ``paste_masks_in_image`` for all N masks at once (equal up to float rounding).

    Args:
        masks: (N, 1, M, M) mask probabilities in box coordinates.
        boxes: (N, 4) float xyxy boxes in image pixels.
        image_size: (H, W) of the image.

    Returns:
        (N, 1, H, W) in the dtype of ``masks``, zero outside each (widened, integer) box.

    torchvision pads each mask to S x S, widens its box by S / M, truncates the box to integers, resizes the
    mask bilinearly to the box's (h, w) = (y1 - y0 + 1, x1 - x0 + 1) and copies it in, one mask at a time.
    Bilinear resizing is separable, so the same result is ``Wy @ mask @ Wx^T`` with (H, S) and (W, S) weight
    matrices that also do the placement: two batched matrix products instead of N resize-and-copy steps
    (one kernel launch pair on a GPU; also faster than the loop on a CPU).
    """
    n, side = masks.shape[0], masks.shape[-1]
    height, width = image_size
    if n == 0:
        return masks.new_zeros((0, 1, height, width))
    src = side + 2 * MASK_PADDING
    padded = F.pad(masks[:, 0], (MASK_PADDING,) * 4)  # (N, S, S)
    corners = expand_boxes(boxes, src / side).to(torch.int64)  # (N, 4), truncated as torchvision does
    box_w = (corners[:, 2] - corners[:, 0] + 1).clamp(min=1)  # (N,)
    box_h = (corners[:, 3] - corners[:, 1] + 1).clamp(min=1)  # (N,)
    with torch.autocast(masks.device.type, enabled=False):  # keep the masks' own precision
        rows = _paste_weights(corners[:, 1], box_h, height, src, masks.dtype)  # (N, H, S)
        cols = _paste_weights(corners[:, 0], box_w, width, src, masks.dtype)  # (N, W, S)
        pasted = torch.bmm(torch.bmm(rows, padded), cols.transpose(1, 2))  # (N, H, W)
    return pasted[:, None]  # (N, 1, H, W)


def resize_scale(height: int, width: int, *, size: int, max_size: int) -> float:
    """Scale factor that brings the shorter side to ``size`` unless the longer side would exceed ``max_size``."""
    return min(size / min(height, width), max_size / max(height, width))


class GolTransform(GeneralizedRCNNTransform):
    """Normalise, resize (random shorter side from ``train_sizes`` while training, ``test_size`` at eval), pad.

    Args (keyword-only):
        train_sizes: shorter-side lengths to draw from (uniformly, with torch's RNG) for each training image.
        test_size: shorter-side length at evaluation.
        max_size: cap on the longer side (the shorter side then ends up below the requested size).
        image_mean, image_std: per-channel normalisation of [0, 1] RGB images.
    """

    def __init__(
        self,
        *,
        train_sizes: Sequence[int],
        test_size: int,
        max_size: int,
        image_mean: Sequence[float] = IMAGE_MEAN,
        image_std: Sequence[float] = IMAGE_STD,
    ) -> None:
        sizes = tuple(int(s) for s in train_sizes)
        if not sizes or min(sizes) <= 0:
            raise ValueError(f"train_sizes must be a non-empty list of positive lengths, got {list(train_sizes)}")
        if test_size <= 0 or max_size <= 0:
            raise ValueError(f"test_size and max_size must be positive, got {test_size} and {max_size}")
        if max_size < max(*sizes, test_size):
            raise ValueError(
                f"max_size {max_size} is below a requested shorter side ({max(*sizes, test_size)}); "
                "raise max_size or lower train_sizes/test_size"
            )
        super().__init__(
            min_size=sizes,
            max_size=max_size,
            image_mean=list(image_mean),
            image_std=list(image_std),
            size_divisible=SIZE_DIVISIBLE,
        )
        self.train_sizes = sizes
        self.test_size = int(test_size)

    def normalize(self, image: Tensor) -> Tensor:
        """(C, H, W) uint8 (as the datasets deliver images, 4x less to copy than float) or float in [0, 1] ->
        normalised float, on the image's device; uint8 becomes exactly ``x / 255`` first."""
        if image.dtype == torch.uint8:
            image = image.float().div_(255.0)
        return super().normalize(image)

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor] | None]:
        """(C, H, W) image and its target -> (C, H', W') image and the target in resized coordinates."""
        if self.training:
            size = self.train_sizes[int(torch.randint(len(self.train_sizes), ()).item())]
        else:
            size = self.test_size
        height, width = image.shape[-2:]
        scale = resize_scale(height, width, size=size, max_size=self.max_size)
        # Same interpolation as torchvision (bilinear image, nearest masks, size recomputed from the scale).
        image = F.interpolate(
            image[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False
        )[0]
        if target is None:
            return image, None
        target["boxes"] = resize_boxes(target["boxes"], [height, width], list(image.shape[-2:]))
        if "masks" in target:
            masks = target["masks"][:, None].float()  # (N, 1, H, W)
            target["masks"] = F.interpolate(masks, scale_factor=scale, recompute_scale_factor=True)[:, 0].byte()
        return image, target

    def postprocess(
        self,
        result: list[dict[str, Tensor]],
        image_shapes: list[tuple[int, int]],
        original_image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """Boxes (and keypoints) back to image coordinates and masks pasted into their (H, W) image, as torchvision
        does; masks go through :func:`paste_masks` (batched) instead of torchvision's per-mask loop."""
        if self.training:
            return result
        for pred, resized, original in zip(result, image_shapes, original_image_sizes):
            pred["boxes"] = resize_boxes(pred["boxes"], resized, original)
            if "masks" in pred:
                pred["masks"] = paste_masks(pred["masks"], pred["boxes"], original)
            if "keypoints" in pred:
                pred["keypoints"] = resize_keypoints(pred["keypoints"], resized, original)
        return result

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(train_sizes={list(self.train_sizes)}, test_size={self.test_size}, "
            f"max_size={self.max_size}, mean={self.image_mean}, std={self.image_std})"
        )
