"""Image groups: the RoIs of each run of ``images_per_group`` consecutive images of a process's batch.

The official multi-GPU runs compute the stochastic losses' batch statistics (DropLoss's tail ratio r, Federated's
class set) and draw their random numbers per GPU, over that GPU's 4 images. A process holding more images
reproduces this by splitting its RoIs into groups of ``images_per_group`` images (paper-notes 3.5, 3.6); the
RoI heads pass ``rois_per_image`` (RoIs of each image, in row order) so that the loss can find them.

Shape shorthand: R = RoIs of the process's step, G = groups.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["check_images_per_group", "check_rois_per_image", "group_index", "group_sizes", "image_groups"]

log = logging.getLogger(__name__)

# (images_per_group, images per process) pairs already warned about: one warning per run, not one per step.
_WARNED: set[tuple[int, int]] = set()


def check_images_per_group(images_per_group: int | None) -> int | None:
    """``images_per_group`` is a positive int (images of one official GPU) or None (the whole process batch)."""
    if images_per_group is None:
        return None
    if isinstance(images_per_group, bool) or not isinstance(images_per_group, int) or images_per_group < 1:
        raise ValueError(
            f"loss.images_per_group must be a positive int (official: 4 images per GPU) or null for the whole "
            f"process batch, got {images_per_group!r}"
        )
    return images_per_group


def check_rois_per_image(rois_per_image: Sequence[int] | None, num_rois: int, *, owner: str) -> list[int] | None:
    """Validate ``rois_per_image`` (non-negative ints summing to R) and return it as a list."""
    if rois_per_image is None:
        return None
    sizes = [int(n) for n in rois_per_image]
    if any(n < 0 for n in sizes) or sum(sizes) != num_rois:
        raise ValueError(
            f"{owner}: rois_per_image must be non-negative RoI counts per image summing to the {num_rois} rows of "
            f"logits, got {sizes}"
        )
    return sizes


def image_groups(num_images: int, images_per_group: int | None) -> list[int]:
    """Images in each group: runs of ``images_per_group`` (the last one shorter when it does not divide)."""
    if num_images == 0:
        return []
    step = images_per_group or num_images
    return [min(step, num_images - first) for first in range(0, num_images, step)]


def group_sizes(
    rois_per_image: Sequence[int] | None, num_rois: int, images_per_group: int | None, *, warn: bool = True
) -> list[int]:
    """RoIs in each group; one group of all ``num_rois`` rows when the images are unknown (None).

    When the process's images are not a multiple of ``images_per_group`` the last group is smaller, and (with
    ``warn``) one warning per run (per such pair) says so.
    """
    if rois_per_image is None:
        return [num_rois]
    images = image_groups(len(rois_per_image), images_per_group)
    if warn and images_per_group is not None and len(rois_per_image) % images_per_group:
        _warn_partial(images_per_group, len(rois_per_image), images)
    sizes, first = [], 0
    for count in images:
        sizes.append(int(sum(rois_per_image[first : first + count])))
        first += count
    return sizes


def group_index(sizes: Sequence[int], device: torch.device) -> Tensor:
    """(R,) int64 group of each row, for groups of ``sizes`` consecutive rows."""
    counts = torch.tensor(list(sizes), dtype=torch.int64, device=device)
    return torch.repeat_interleave(torch.arange(len(sizes), device=device), counts)


def _warn_partial(images_per_group: int, num_images: int, images: list[int]) -> None:
    key = (images_per_group, num_images)
    if key in _WARNED:
        return
    _WARNED.add(key)
    log.warning(
        "loss.images_per_group=%d but this process holds %d images per step; statistics are computed over groups "
        "of %s images, the released runs used %d",
        images_per_group,
        num_images,
        images,
        images_per_group,
    )
