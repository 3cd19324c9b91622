"""Batched inference over a split and its LVIS evaluation (lvis-api semantics, in memory, no JSON round trip)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gol.config.train import EvalConf
from gol.data import DataSource, collate
from gol.evaluation.api import evaluate
from gol.evaluation.convert import detections_from_output
from gol.evaluation.detections import Detections

log = logging.getLogger(__name__)


def predict(
    model: nn.Module,
    dataset: Dataset,
    *,
    category_ids: tuple[int, ...],
    batch_size: int,
    device: torch.device,
    num_workers: int = 0,
) -> Detections:
    """Run the detector over ``dataset``; detections come back in the dataset's image and category ids."""
    loader = DataLoader(
        dataset, batch_size=batch_size, collate_fn=collate, num_workers=num_workers, pin_memory=device.type == "cuda"
    )  # pinned: the non_blocking copies overlap on CUDA
    parts = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), torch.autocast(device.type, enabled=device.type == "cuda"):
            for images, targets in loader:
                outputs = model([image.to(device, non_blocking=True) for image in images])
                for output, target in zip(outputs, targets):
                    # Masks are encoded image by image: a batch of full-size probability maps never piles up.
                    parts.append(
                        detections_from_output(output, image_id=int(target["image_id"]), category_ids=category_ids)
                    )
    finally:
        model.train(was_training)
    return Detections.concatenate(parts)


def evaluate_model(
    model: nn.Module, data: DataSource, conf: EvalConf, *, device: torch.device, num_workers: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, per-category AP) of ``model`` on the val split, as written to metrics.json / per_category.json.

    The detections stay in memory; segm detections' areas (APs/APm/APl) are their masks' or their boxes' as
    ``conf.segm_area`` says, and metrics.json's ``eval`` block records which.
    """
    detections = predict(
        model, data.val, category_ids=tuple(data.stats.category_ids), batch_size=conf.batch_size, device=device,
        num_workers=num_workers,
    )  # fmt: skip
    result = evaluate(
        data.val_annotation_file, detections, iou_types=list(conf.iou_types), engine=conf.engine,
        max_dets=conf.max_dets, segm_area=conf.segm_area,
    )  # fmt: skip
    log.info(
        "LVIS evaluation (%s engine, %d detections, segm areas from %ss):\n%s",
        conf.engine, len(detections), conf.segm_area, result.table(),
    )  # fmt: skip
    return result.metrics(), result.per_category()
