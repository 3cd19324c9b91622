"""Torchvision detection outputs -> detections in the dataset's ids (columnar, or LVIS result dicts).

Shape shorthand: N = detections of one image, K = foreground categories, H x W = the original image size,
M = side of a predicted mask (28).
Labels follow torchvision: 1..K, 0 is background; label k is the k-th dataset category id in ascending order.

Masks come either pasted into their images (``masks`` (N, 1, H, W), torchvision's output) or in box coordinates
(``box_masks`` (N, 1, M, M) and ``image_size``, from a detector inside ``gol.models.transform.masks_in_boxes``).
The second is the test-time path: each mask is pasted inside its box only (``gol.models.paste.paste_in_boxes``)
and its RLE built from that box (``gol.evaluation.box_rle``): the bytes of pasting into the image, thresholding
and encoding, without the (N, H, W) maps or their Fortran-ordered copy (``python -m gol.bench postprocess`` times
both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import torch
from torch import Tensor

from gol.evaluation.box_rle import encode_in_boxes
from gol.evaluation.detections import Detections
from gol.evaluation.errors import EvaluationInputError
from gol.evaluation.rles import RLEs
from gol.models.paste import paste_in_boxes

MASK_THRESHOLD = 0.5  # binarisation of mask probabilities, as torchvision's and detectron2's evaluators do


def detections_from_output(output: Mapping[str, Tensor], *, image_id: int, category_ids: Sequence[int]) -> Detections:
    """One image's torchvision output -> :class:`Detections`.

    Args:
        output: ``boxes`` (N, 4) xyxy absolute pixels, ``labels`` (N,) int64 in 1..K, ``scores`` (N,), and
            optionally masks: ``masks`` (N, 1, H, W) float probabilities, or ``box_masks`` (N, 1, M, M) float
            probabilities in box coordinates with ``image_size`` (2,) (H, W).
        image_id: the dataset id of the image.
        category_ids: (K,) dataset category ids in label order (``category_ids[label - 1]``).
    """
    boxes = output["boxes"].detach().to("cpu", torch.float64)  # (N, 4) xyxy
    labels = output["labels"].detach().to("cpu", torch.int64)  # (N,)
    scores = output["scores"].detach().to("cpu", torch.float64)  # (N,)
    n = labels.shape[0]
    if boxes.shape != (n, 4) or scores.shape != (n,):
        raise EvaluationInputError(
            f"output of image {image_id}: boxes {tuple(boxes.shape)}, labels {tuple(labels.shape)}, scores "
            f"{tuple(scores.shape)} do not describe the same N detections"
        )
    lookup = np.asarray(category_ids, dtype=np.int64)  # (K,)
    labels_np = labels.numpy()
    if n and (labels_np.min() < 1 or labels_np.max() > lookup.size):
        raise EvaluationInputError(
            f"output of image {image_id} has labels outside 1..{lookup.size}; pass the dataset's {lookup.size} "
            "category ids in label order"
        )
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1)  # (N, 4)
    segmentations = None
    if "box_masks" in output:
        segmentations = encode_box_masks(output["box_masks"], output["boxes"], output["image_size"])
    elif "masks" in output:
        segmentations = RLEs.from_dicts(encode_masks(output["masks"]))
    return Detections(
        image_ids=np.full(n, image_id, dtype=np.int64),
        category_ids=lookup[labels_np - 1] if n else np.zeros(0, np.int64),
        scores=scores.numpy(),
        boxes=xywh.numpy(),
        segmentations=segmentations,
    )


def encode_masks(masks: Tensor) -> list[dict[str, Any]]:
    """(N, 1, H, W) mask probabilities -> N compressed RLEs of ``masks > 0.5`` (counts as bytes).

    pycocotools encodes a Fortran-ordered (H, W, N) uint8 stack in one call.
    """
    if masks.dim() != 4 or masks.shape[1] != 1:
        raise EvaluationInputError(f"masks must have shape (N, 1, H, W), got {tuple(masks.shape)}")
    if masks.shape[0] == 0:
        return []
    binary = (masks[:, 0] > MASK_THRESHOLD).to("cpu", torch.uint8)  # (N, H, W)
    stack = np.asfortranarray(binary.permute(1, 2, 0).numpy())  # (H, W, N), column-major as pycocotools wants
    return mask_utils.encode(stack)


def encode_box_masks(masks: Tensor, boxes: Tensor, image_size: Tensor | tuple[int, int]) -> RLEs:
    """Compressed RLEs of ``masks > 0.5`` pasted into their boxes, made from each box alone.

    Args:
        masks: (N, 1, M, M) mask probabilities in box coordinates.
        boxes: (N, 4) xyxy boxes in image pixels, as the detector returns them (their dtype decides the pasted box).
        image_size: (H, W) of the image.

    Equals ``encode_masks(paste_masks(masks, boxes, image_size))`` byte for byte.
    """
    if masks.dim() != 4 or masks.shape[1] != 1 or boxes.shape != (masks.shape[0], 4):
        raise EvaluationInputError(
            f"box masks must have shape (N, 1, M, M) with boxes (N, 4), got {tuple(masks.shape)} and "
            f"{tuple(boxes.shape)}"
        )
    height, width = (int(s) for s in image_size)
    pasted = paste_in_boxes(masks.detach().cpu(), boxes.detach().cpu(), (height, width))
    columns = [block.T.numpy() for block in pasted.blocks]  # (w_n, h_n) each, contiguous
    counts = encode_in_boxes(columns, pasted.regions.numpy(), (height, width), threshold=MASK_THRESHOLD)
    return RLEs.from_counts(counts, np.tile(np.array([height, width], np.int64), (len(counts), 1)))


def outputs_to_results(
    outputs: Sequence[Mapping[str, Tensor]], *, image_ids: Sequence[int], category_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Torchvision outputs of several images -> LVIS result dicts (``bbox`` xywh, RLE counts as str)."""
    if len(outputs) != len(image_ids):
        raise EvaluationInputError(f"{len(outputs)} outputs but {len(image_ids)} image ids; give one id per output")
    parts = [detections_from_output(o, image_id=int(i), category_ids=category_ids) for o, i in zip(outputs, image_ids)]
    return Detections.concatenate(parts).to_results()
