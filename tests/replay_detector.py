"""A detector that replays fixed outputs, to test inference and evaluation on detections known in advance."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import torch
from torch import Tensor, nn


class ReplayDetector(nn.Module):
    """Replays torchvision outputs (each image tensor holds its image id), cut like torchvision's RoI heads to the
    best ``roi_heads.detections_per_img`` of each image (ties in the outputs' order)."""

    def __init__(self, outputs: dict[int, dict[str, Tensor]], cap: int) -> None:
        super().__init__()
        self.outputs = outputs
        self.roi_heads = SimpleNamespace(detections_per_img=cap)
        self.caps_seen: list[int] = []

    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        cap = self.roi_heads.detections_per_img
        self.caps_seen.append(cap)
        out = []
        for image in images:
            o = self.outputs[int(image[0, 0, 0])]
            keep = torch.argsort(o["scores"], descending=True, stable=True)[:cap]
            out.append({k: v[keep] for k, v in o.items()})
        return out


def replay_outputs(
    gt: dict[str, Any], results: list[dict[str, Any]], category_ids: list[int], *, positive_width: bool = True
) -> dict[int, dict[str, Tensor]]:
    """Per image id, the torchvision outputs (xyxy boxes, labels 1..K, scores, mask probabilities) holding the
    image's ``results`` (only those of positive width with ``positive_width``, as a detector's boxes are)."""
    label = {c: i + 1 for i, c in enumerate(category_ids)}
    outputs = {}
    for image in gt["images"]:
        mine = [r for r in results if r["image_id"] == image["id"] and (r["bbox"][2] > 0 or not positive_width)]
        h, w = image["height"], image["width"]
        boxes = torch.tensor([r["bbox"] for r in mine], dtype=torch.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        masks = np.stack([mask_utils.decode(r["segmentation"]) for r in mine]) if mine else np.zeros((0, h, w))
        outputs[image["id"]] = {
            "boxes": boxes,
            "labels": torch.tensor([label[r["category_id"]] for r in mine], dtype=torch.int64),
            "scores": torch.tensor([r["score"] for r in mine], dtype=torch.float64),
            "masks": torch.from_numpy(masks.astype(np.float32))[:, None],
        }
    return outputs


def replay_split(gt: dict[str, Any]) -> list[Any]:
    """The val split a :class:`ReplayDetector` reads: (image holding its id, target) per image of ``gt``."""
    return [(torch.full((3, 4, 4), float(im["id"])), {"image_id": torch.tensor(im["id"])}) for im in gt["images"]]
