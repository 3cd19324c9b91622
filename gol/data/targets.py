"""LVIS/COCO annotations -> torchvision detection targets.

Shape shorthand: N = instances kept in one image, H x W = image height x width, K = foreground categories.
Labels follow torchvision: 1..K for categories (label k is the k-th category id in ascending order), 0 is background
and never appears in a target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import torch
from torch import Tensor

from gol.data.entries import valid_polygons

Annotation = Mapping[str, Any]
Target = dict[str, Any]


def segmentation_to_rle(segmentation: Any, *, height: int, width: int) -> dict[str, Any]:
    """One annotation's ``segmentation`` (polygons, uncompressed RLE or compressed RLE) as compressed RLE.

    Same semantics as ``lvis.LVIS.ann_to_rle``: the parts of a multi-polygon object are merged into one mask.
    """
    if isinstance(segmentation, list):
        polygons = valid_polygons(segmentation)
        _check_coordinates(polygons, height=height, width=width)
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        return mask_utils.frPyObjects(segmentation, height, width)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        return dict(segmentation)
    raise ValueError(
        f"unsupported segmentation of type {type(segmentation).__name__}; "
        "expected polygons (list) or RLE (dict with counts)"
    )


def _has_shape(segmentation: Any) -> bool:
    """An RLE, or polygons of which at least one is valid (``valid_polygons``)."""
    return not isinstance(segmentation, list) or bool(valid_polygons(segmentation))


def _check_coordinates(polygons: list[Any], *, height: int, width: int) -> None:
    """Refuse coordinates pycocotools cannot rasterise safely: NaN (a JSON null), infinite, or so far outside the
    image (more than its own size) that its C code would overflow or allocate without bound."""
    for polygon in polygons:
        xy = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)  # (P, 2); raises on a non-number
        inside = (np.abs(xy[:, 0] - width / 2) <= 1.5 * width) & (np.abs(xy[:, 1] - height / 2) <= 1.5 * height)
        if not inside.all():  # NaN compares False
            raise ValueError(f"polygon point {xy[~inside][0].tolist()} is not a point near the {height}x{width} image")


def segmentations_to_masks(segmentations: Sequence[Any], *, height: int, width: int) -> Tensor:
    """Binary masks (N, H, W) uint8 of N segmentations, decoded in one pycocotools call."""
    if len(segmentations) == 0:
        return torch.zeros((0, height, width), dtype=torch.uint8)
    rles = [segmentation_to_rle(s, height=height, width=width) for s in segmentations]
    decoded = mask_utils.decode(rles)  # (H, W, N) Fortran order
    return torch.from_numpy(np.ascontiguousarray(decoded.transpose(2, 0, 1)))  # (N, H, W)


def xywh_to_xyxy(boxes: Tensor, *, height: int, width: int) -> Tensor:
    """(N, 4) LVIS ``[x, y, w, h]`` -> (N, 4) ``[x1, y1, x2, y2]``, clipped to the image as torchvision's reference."""
    xyxy = boxes.clone()
    xyxy[:, 2:] += xyxy[:, :2]
    xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0, width)
    xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0, height)
    return xyxy


def annotations_to_target(
    annotations: Sequence[Annotation],
    *,
    image_id: int,
    height: int,
    width: int,
    label_of: Mapping[int, int],
    with_masks: bool = True,
) -> Target:
    """Target dict of one image in torchvision's detection convention.

    Args:
        annotations: the image's LVIS annotations (``bbox`` xywh, ``category_id``, ``segmentation``).
        image_id: the dataset's image id, kept in the target for evaluation.
        height, width: image size from the image record (masks are rasterised at this size).
        label_of: category id -> contiguous label in 1..K.
        with_masks: decode masks (False skips the rasterisation, e.g. for box-only statistics).

    Returns:
        ``boxes`` (N, 4) float32 xyxy absolute pixels, ``labels`` (N,) int64 in 1..K, ``masks`` (N, H, W) uint8
        (only with ``with_masks``), ``image_id`` int. Boxes with zero width or height after clipping (torchvision
        rejects degenerate boxes in training), and instances without a polygon of 3 points (as detectron2), are
        dropped together with their label and mask.
    """
    if annotations:
        boxes = torch.tensor([a["bbox"] for a in annotations], dtype=torch.float32).reshape(-1, 4)  # (N, 4) xywh
    else:
        boxes = torch.zeros((0, 4), dtype=torch.float32)
    boxes = xywh_to_xyxy(boxes, height=height, width=width)  # (N, 4) xyxy
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # (N,)
    # An instance without a valid polygon leaves the target, as in detectron2's loaders.
    keep &= torch.tensor([_has_shape(a.get("segmentation")) for a in annotations], dtype=torch.bool).reshape(-1)
    kept = [a for a, k in zip(annotations, keep.tolist(), strict=True) if k]
    labels = torch.tensor([label_of[a["category_id"]] for a in kept], dtype=torch.int64)  # (N,)
    target: Target = {"boxes": boxes[keep], "labels": labels, "image_id": int(image_id)}
    if with_masks:
        target["masks"] = segmentations_to_masks([a["segmentation"] for a in kept], height=height, width=width)
    return target
