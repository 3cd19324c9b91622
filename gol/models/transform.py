"""The detector's input transform: normalise, shorter-side resize, pad; and the way back to image coordinates.

Shape shorthand: C = 3 colour channels, H x W = an input image, H' x W' = after resizing, N = instances,
M = side of a predicted mask (28).

Resizing runs inside the model (on its device), as in torchvision, so datasets hand over images at their own
size and predictions come back in those coordinates (``postprocess`` rescales boxes and pastes masks with
:func:`gol.models.paste.paste_masks`). The paper's recipe (paper-notes section 2): shorter side drawn from
{640, ..., 800} while training, 800 at test, longer side capped at 1333, mean/std normalisation, padding to a
multiple of 32.

Masks come back pasted into full-size images (N, 1, H, W), torchvision's output, unless ``masks_in_image`` is False
(:func:`masks_in_boxes` sets it for a block): evaluation only needs each mask inside its box and pastes it there
itself (``gol.evaluation.convert``), so the N x H x W probability maps are never made.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes, resize_keypoints

from gol.models.paste import paste_masks

# ImageNet statistics on [0, 1] RGB, the same numbers as mmdet's 123.675/58.395 ... on [0, 255].
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
# Padding multiple: the coarsest FPN stride of every detector here.
SIZE_DIVISIBLE = 32


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

    Attribute ``masks_in_image`` (True): whether :meth:`postprocess` pastes masks into their images; see
    :func:`masks_in_boxes`.
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
        # False: postprocess leaves masks in box coordinates ("box_masks", with "image_size"); see masks_in_boxes.
        self.masks_in_image = True

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
        does (with :func:`gol.models.paste.paste_masks`).

        With ``masks_in_image`` False, each image's masks are not pasted: ``masks`` (N, 1, M, M) becomes ``box_masks``
        (the same probabilities in box coordinates, which the image's ``boxes`` place) and ``image_size`` (2,) int64
        holds the image's (H, W).
        """
        if self.training:
            return result
        for pred, resized, original in zip(result, image_shapes, original_image_sizes):
            pred["boxes"] = resize_boxes(pred["boxes"], resized, original)
            if "masks" in pred and self.masks_in_image:
                pred["masks"] = paste_masks(pred["masks"], pred["boxes"], original)
            elif "masks" in pred:
                pred["box_masks"] = pred.pop("masks")
                pred["image_size"] = torch.tensor(original, dtype=torch.int64)
            if "keypoints" in pred:
                pred["keypoints"] = resize_keypoints(pred["keypoints"], resized, original)
        return result

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(train_sizes={list(self.train_sizes)}, test_size={self.test_size}, "
            f"max_size={self.max_size}, mean={self.image_mean}, std={self.image_std})"
        )


@contextmanager
def masks_in_boxes(model: nn.Module) -> Iterator[None]:
    """Inside the block, ``model`` (a detector whose ``transform`` is a :class:`GolTransform`) returns its masks in
    box coordinates (``box_masks`` and ``image_size``, see :meth:`GolTransform.postprocess`); any other model is
    left as it is."""
    transform = getattr(model, "transform", None)
    if not isinstance(transform, GolTransform):
        yield
        return
    old, transform.masks_in_image = transform.masks_in_image, False
    try:
        yield
    finally:
        transform.masks_in_image = old
