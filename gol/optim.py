"""SGD with linear warm-up and multi-step decay, as in the paper's mmdetection recipe (paper-notes section 2)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from gol.config.schedule import ScheduleConf


def resolve_length(schedule: ScheduleConf, *, iters_per_epoch: int) -> tuple[int, list[int]]:
    """(max_iter, steps in iterations) from an epoch-based (1x, 2x) or iteration-based schedule."""
    if (schedule.epochs is None) == (schedule.max_iter is None):
        raise ValueError("schedule: set exactly one of `epochs` (1x, 2x) or `max_iter` (iteration-based schedules)")
    steps = list(schedule.steps)
    if sorted(steps) != steps:
        raise ValueError(f"schedule.steps must be increasing, got {steps}")
    if schedule.epochs is not None:
        return schedule.epochs * iters_per_epoch, [s * iters_per_epoch for s in steps]
    assert schedule.max_iter is not None
    return schedule.max_iter, steps


def lr_factor(iteration: int, *, warmup_iters: int, warmup_ratio: float, steps: Sequence[int], gamma: float) -> float:
    """Multiplier of the base learning rate at ``iteration`` (0-based)."""
    factor = gamma ** bisect.bisect_right(steps, iteration)
    if iteration < warmup_iters:
        alpha = iteration / warmup_iters
        factor *= warmup_ratio * (1.0 - alpha) + alpha
    return factor


def base_lr(schedule: ScheduleConf) -> float:
    """The configured lr, linearly scaled to the actual batch when ``scale_lr`` (Goyal et al. linear scaling)."""
    if not schedule.scale_lr:
        return schedule.lr
    return schedule.lr * schedule.ims_per_batch / schedule.base_batch


def build_optimizer(
    model: nn.Module, schedule: ScheduleConf, *, steps: Sequence[int]
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=base_lr(schedule), momentum=schedule.momentum, weight_decay=schedule.weight_decay
    )
    factor = partial(
        lr_factor,
        warmup_iters=schedule.warmup_iters,
        warmup_ratio=schedule.warmup_ratio,
        steps=tuple(steps),
        gamma=schedule.gamma,
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
