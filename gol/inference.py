"""Batched inference over a split and its LVIS evaluation (lvis-api semantics, in memory, no JSON round trip)."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from gol.config.train import EvalConf
from gol.data import DataSource, collate
from gol.evaluation.api import evaluate
from gol.evaluation.convert import detections_from_output
from gol.evaluation.detections import Detections
from gol.evaluation.prepare import top_per_category
from gol.loader import end_with_parent
from gol.models.transform import masks_in_boxes

log = logging.getLogger(__name__)

HEARTBEAT_S = 60.0


def predict(
    model: nn.Module,
    dataset: Dataset,
    *,
    category_ids: tuple[int, ...],
    batch_size: int,
    device: torch.device,
    num_workers: int = 0,
    per_image_cap: int | None = None,
    topk_per_category: int | None = None,
    heartbeat: Callable[[], None] | None = None,
) -> Detections:
    """Run the detector over ``dataset``; detections come back in the dataset's image and category ids.

    ``heartbeat`` is called about every ``HEARTBEAT_S`` seconds (the engine updates the run's record with it, so an
    hours-long inference never reads as a dead run to another launch).

    ``per_image_cap`` replaces the detector's detections per image for this pass; ``topk_per_category`` keeps the
    top K detections of each category over the split (large-vocab-devil's ``infer_topk``, which AP-fixed needs):
    whenever more than 2 K x categories detections are held, they are cut back to the top K of each category.
    """
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=functools.partial(end_with_parent, os.getpid()),
    )  # fmt: skip  (pinned: the non_blocking copies overlap on CUDA)
    parts: list[Detections] = []
    held = 0
    budget = None if topk_per_category is None else 2 * topk_per_category * len(category_ids)
    was_training = model.training
    model.eval()
    try:
        with (
            torch.inference_mode(),
            torch.autocast(device.type, enabled=device.type == "cuda"),
            _per_image_cap(model, per_image_cap),
            masks_in_boxes(model),  # masks come back unpasted: detections_from_output pastes each inside its box
        ):
            beat = time.monotonic()
            for images, targets in loader:
                if heartbeat is not None and time.monotonic() - beat > HEARTBEAT_S:
                    heartbeat()
                    beat = time.monotonic()
                outputs = model([image.to(device, non_blocking=True) for image in images])
                for output, target in zip(outputs, targets):
                    # Masks are encoded image by image: a batch of full-size probability maps never piles up.
                    parts.append(
                        detections_from_output(output, image_id=int(target["image_id"]), category_ids=category_ids)
                    )
                    held += len(parts[-1])
                if budget is not None and held > budget:
                    parts = [_top(Detections.concatenate(parts), topk_per_category)]  # type: ignore[arg-type]
                    held = len(parts[0])
    finally:
        model.train(was_training)
    dets = Detections.concatenate(parts)
    return dets if topk_per_category is None else _top(dets, topk_per_category)


def _top(dets: Detections, k: int) -> Detections:
    """The top ``k`` detections of each category, in their order."""
    return dets.subset(top_per_category(dets.category_ids, dets.scores, k))


@contextmanager
def _per_image_cap(model: nn.Module, cap: int | None) -> Iterator[None]:
    """The detector keeps ``cap`` detections per image (after its score threshold and NMS) inside the block."""
    heads: Any = getattr(model, "roi_heads", None)
    if cap is None or heads is None or not hasattr(heads, "detections_per_img"):
        yield
        return
    old, heads.detections_per_img = heads.detections_per_img, cap
    try:
        yield
    finally:
        heads.detections_per_img = old


def evaluate_model(
    model: nn.Module,
    data: DataSource,
    conf: EvalConf,
    *,
    device: torch.device,
    num_workers: int = 0,
    heartbeat: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, per-category AP) of ``model`` on the val split, as written to metrics.json / per_category.json.

    The detections stay in memory; segm detections' areas (APs/APm/APl) are their masks' or their boxes' as
    ``conf.segm_area`` says, and metrics.json's ``eval`` block records which (and the protocols and
    ``infer_topk`` when they are not the defaults).
    """
    topk = conf.infer_topk
    detections = predict(
        model, data.val, category_ids=tuple(data.stats.category_ids), batch_size=conf.batch_size, device=device,
        num_workers=num_workers, per_image_cap=None if topk is None else conf.infer_topk_per_image,
        topk_per_category=topk, heartbeat=heartbeat,
    )  # fmt: skip
    result = evaluate(
        data.val_annotation_file, detections, iou_types=list(conf.iou_types), engine=conf.engine,
        max_dets=conf.max_dets, segm_area=conf.segm_area, protocols=list(conf.protocols),
        dets_per_category=conf.dets_per_category, errors=conf.errors,
    )  # fmt: skip
    log.info(
        "LVIS evaluation (%s engine, %d detections, segm areas from %s):\n%s",
        result.engine, len(detections), {"box": "boxes", "mask": "masks"}[conf.segm_area], result.table(),
    )  # fmt: skip
    metrics = result.metrics()
    if topk is not None:  # inference kept other detections than the detector's cap: the numbers say so
        metrics.setdefault("eval", {})["infer_topk"] = topk
    return metrics, result.per_category()
