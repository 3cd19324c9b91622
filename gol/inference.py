"""Batched inference over a split and its LVIS evaluation (lvis-api semantics, in memory, no JSON round trip).

In a job of several processes every rank predicts its shard of the val split (:func:`shard_indices`) and rank 0
gathers the detections and computes the metrics: the detections it evaluates are those of one process, in the
same order, so the metrics are too (:func:`merge_shards`).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from gol import distributed
from gol.config.train import EvalConf
from gol.data import DataSource
from gol.evaluation.api import evaluate
from gol.evaluation.convert import detections_from_output
from gol.evaluation.detections import Detections
from gol.evaluation.prepare import top_per_category
from gol.loader import CarriedFailures, LoadFailure, collate_or_failure, end_with_parent
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
    """Run the detector over ``dataset``; detections come back in the dataset's image and category ids, image by
    image in the dataset's order.

    ``heartbeat`` is called about every ``HEARTBEAT_S`` seconds (the engine updates the run's record with it, so an
    hours-long inference never reads as a dead run to another launch).

    ``per_image_cap`` replaces the detector's detections per image for this pass; ``topk_per_category`` keeps the
    top K detections of each category over the split (large-vocab-devil's ``infer_topk``, which AP-fixed needs):
    whenever more than 2 K x categories detections are held, they are cut back to the top K of each category.
    """
    return _predict(
        model, dataset, category_ids=category_ids, batch_size=batch_size, device=device, num_workers=num_workers,
        per_image_cap=per_image_cap, topk_per_category=topk_per_category, heartbeat=heartbeat,
    )[0]  # fmt: skip


def predict_sharded(
    model: nn.Module,
    dataset: Dataset,
    *,
    world: distributed.World,
    category_ids: tuple[int, ...],
    batch_size: int,
    device: torch.device,
    num_workers: int = 0,
    per_image_cap: int | None = None,
    topk_per_category: int | None = None,
    heartbeat: Callable[[], None] | None = None,
) -> Detections | None:
    """:func:`predict` with the split shared among the processes of ``world``: each predicts its shard
    (:func:`shard_indices`), and rank 0 gets the detections :func:`predict` gives in one process, in its order;
    the other ranks get None. A single process predicts the whole split."""
    num_images = len(dataset)  # type: ignore[arg-type]
    shard = np.asarray(shard_indices(num_images, batch_size, world), dtype=np.int64)
    dets, position = _predict(
        model, Subset(dataset, shard.tolist()), category_ids=category_ids, batch_size=batch_size, device=device,
        num_workers=num_workers, per_image_cap=per_image_cap, topk_per_category=topk_per_category,
        heartbeat=heartbeat,
    )  # fmt: skip
    if not world.distributed:
        return dets
    shards = distributed.gather_to_main((dets, shard[position]), world)
    if shards is None:
        return None
    merged = merge_shards(shards, topk_per_category=topk_per_category)
    log.info("gathered %d detections of %d images from %d processes", len(merged), num_images, world.world_size)
    return merged


def shard_indices(num_images: int, batch_size: int, world: distributed.World) -> list[int]:
    """The images (dataset positions, ascending) that rank ``world.rank`` predicts: every ``world_size``-th batch
    of ``batch_size`` images, from its rank's. The shards are disjoint and cover the split, and each batch holds
    the images it holds in one process (the same padding and shapes, so the same detections)."""
    step = world.world_size * batch_size
    firsts = range(world.rank * batch_size, num_images, step)
    return [i for first in firsts for i in range(first, min(first + batch_size, num_images))]


def merge_shards(
    shards: Sequence[tuple[Detections, np.ndarray]], *, topk_per_category: int | None = None
) -> Detections:
    """The detections of one process from those of its shards: each shard's detections with the (N,) dataset
    position of each one's image, in the shard's order.

    Sorted (stably) by image position, the detections come in the order of one process (an image's detections all
    come from one shard, in the detector's order); the per-category top K is then exact: a detection among the top
    K of its category over the split is among the top K of its shard, which each shard kept.
    """
    merged = Detections.concatenate([dets for dets, _ in shards])
    position = np.concatenate([np.asarray(p, dtype=np.int64) for _, p in shards]) if shards else np.zeros(0, np.int64)
    merged = merged.subset(np.argsort(position, kind="stable"))
    return merged if topk_per_category is None else _top(merged, topk_per_category)


def _predict(
    model: nn.Module,
    dataset: Dataset,
    *,
    category_ids: tuple[int, ...],
    batch_size: int,
    device: torch.device,
    num_workers: int,
    per_image_cap: int | None,
    topk_per_category: int | None,
    heartbeat: Callable[[], None] | None,
) -> tuple[Detections, np.ndarray]:
    """:func:`predict`'s detections and the (N,) int64 position in ``dataset`` of each one's image."""
    loader = DataLoader(
        CarriedFailures(dataset),
        batch_size=batch_size,
        collate_fn=collate_or_failure,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=functools.partial(end_with_parent, os.getpid()),
    )  # fmt: skip  (pinned: the non_blocking copies overlap on CUDA)
    parts: list[Detections] = []
    positions: list[np.ndarray] = []
    held = 0
    seen = 0  # images predicted so far
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
            for batch in loader:
                if isinstance(batch, LoadFailure):
                    raise batch.error  # as the dataset raised it: the run's one-line error names the file
                images, targets = batch
                if heartbeat is not None and time.monotonic() - beat > HEARTBEAT_S:
                    heartbeat()
                    beat = time.monotonic()
                outputs = model([image.to(device, non_blocking=True) for image in images])
                for output, target in zip(outputs, targets):
                    # Masks are encoded image by image: a batch of full-size probability maps never piles up.
                    parts.append(
                        detections_from_output(output, image_id=int(target["image_id"]), category_ids=category_ids)
                    )
                    positions.append(np.full(len(parts[-1]), seen, dtype=np.int64))
                    held += len(parts[-1])
                    seen += 1
                if budget is not None and held > budget:
                    kept = _top_rows(Detections.concatenate(parts), topk_per_category)  # type: ignore[arg-type]
                    parts, positions = [kept[0]], [np.concatenate(positions)[kept[1]]]
                    held = len(parts[0])
    finally:
        model.train(was_training)
    dets = Detections.concatenate(parts)
    position = np.concatenate(positions) if positions else np.zeros(0, np.int64)
    if topk_per_category is None:
        return dets, position
    top, rows = _top_rows(dets, topk_per_category)
    return top, position[rows]


def _top_rows(dets: Detections, k: int) -> tuple[Detections, np.ndarray]:
    """The top ``k`` detections of each category, in their order, and their rows in ``dets``."""
    rows = top_per_category(dets.category_ids, dets.scores, k)
    return dets.subset(rows), rows


def _top(dets: Detections, k: int) -> Detections:
    """The top ``k`` detections of each category, in their order."""
    return _top_rows(dets, k)[0]


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
    world: distributed.World | None = None,
    num_workers: int = 0,
    heartbeat: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(metrics, per-category AP) of ``model`` on the val split, as written to metrics.json / per_category.json.

    In a job of several processes (``world``) every rank predicts its shard of the split and rank 0 alone computes
    the metrics, from the detections of one process: the other ranks get None.

    The detections stay in memory; segm detections' areas (APs/APm/APl) are their masks' or their boxes' as
    ``conf.segm_area`` says, and metrics.json's ``eval`` block records which (and the protocols and
    ``infer_topk`` when they are not the defaults).
    """
    topk = conf.infer_topk
    detections = predict_sharded(
        model, data.val, world=world or distributed.World(), category_ids=tuple(data.stats.category_ids),
        batch_size=conf.batch_size, device=device, num_workers=num_workers,
        per_image_cap=None if topk is None else conf.infer_topk_per_image, topk_per_category=topk,
        heartbeat=heartbeat,
    )  # fmt: skip
    return None if detections is None else score(detections, data, conf)


def score(detections: Detections, data: DataSource, conf: EvalConf) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, per-category AP) of the val split's ``detections``, evaluated as ``conf`` says."""
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
    if conf.infer_topk is not None:  # inference kept other detections than the detector's cap: the numbers say so
        metrics.setdefault("eval", {})["infer_topk"] = conf.infer_topk
    return metrics, result.per_category()
