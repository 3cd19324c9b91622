"""Checks of a composed config that its schemas cannot express, run before anything is built."""

from __future__ import annotations

from hydra.utils import get_class
from omegaconf import DictConfig

from gol.distributed import check_device_name
from gol.losses import VALID_PAIRS, check_pair
from gol.models.htc import check_detector_available

_EVAL_ENGINES = ("lvis", "fast")
_IOU_TYPES = ("bbox", "segm")


def validate(cfg: DictConfig, *, loss_option: str | None = None) -> None:
    """Raise a one-line ``ValueError`` naming the problem and the fix.

    ``loss_option`` is the ``loss`` group's choice (``gol`` accepts Gumbel only, though its class is DropLoss).
    """
    check_device_name(cfg.device)
    check_detector_available(cfg.detector._target_)
    loss = loss_option if loss_option in VALID_PAIRS else get_class(cfg.loss._target_)
    check_pair(get_class(cfg.activation._target_), loss)
    check_schedule(cfg.schedule)
    if cfg.eval.engine not in _EVAL_ENGINES:
        raise ValueError(f"eval.engine={cfg.eval.engine!r} is unknown; use one of {', '.join(_EVAL_ENGINES)}")
    unknown = sorted(set(cfg.eval.iou_types) - set(_IOU_TYPES))
    if unknown:
        raise ValueError(f"eval.iou_types holds {unknown}; use a subset of {list(_IOU_TYPES)}")
    if cfg.eval.batch_size < 1:
        raise ValueError(f"eval.batch_size (test images per batch) must be at least 1, got {cfg.eval.batch_size}")
    if cfg.num_workers < 0:
        raise ValueError(f"num_workers must be 0 (load in the training process) or more, got {cfg.num_workers}")


def check_schedule(schedule: DictConfig) -> None:
    """The schedule's numbers: each out-of-range value is named with the range it must lie in."""
    if (schedule.epochs is None) == (schedule.max_iter is None):
        raise ValueError("schedule: set exactly one of `epochs` (1x, 2x) or `max_iter` (iteration-based schedules)")
    length_key = "epochs" if schedule.epochs is not None else "max_iter"
    length = schedule[length_key]
    at_least = {length_key: 1, "ims_per_batch": 1, "base_batch": 1, "checkpoint_period": 1, "log_period": 1,
                "warmup_iters": 0, "max_nonfinite": 0}  # fmt: skip
    for key, low in at_least.items():
        if schedule[key] < low:
            raise ValueError(f"schedule.{key} must be at least {low}, got {schedule[key]}")
    positive = {"lr": schedule.lr, "gamma": schedule.gamma, "warmup_ratio": schedule.warmup_ratio}
    if schedule.grad_clip is not None:
        positive["grad_clip"] = schedule.grad_clip
    for key, value in positive.items():
        if not value > 0:
            raise ValueError(f"schedule.{key} must be positive, got {value}")
    if schedule.warmup_ratio > 1:
        raise ValueError(
            f"schedule.warmup_ratio is the warm-up's starting lr factor, in (0, 1]; got {schedule.warmup_ratio}"
        )
    if not 0 <= schedule.momentum < 1 or schedule.weight_decay < 0:
        raise ValueError(
            f"schedule.momentum must be in [0, 1) and schedule.weight_decay >= 0; got {schedule.momentum} and "
            f"{schedule.weight_decay}"
        )
    steps = list(schedule.steps)
    if any(b <= a for a, b in zip(steps, steps[1:])) or any(not 0 < s < length for s in steps):
        raise ValueError(
            f"schedule.steps must be increasing and within the schedule (0 < step < {length_key}={length}), got {steps}"
        )
