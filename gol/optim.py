"""SGD with linear warm-up and multi-step decay, as in the paper's mmdetection recipe (paper-notes section 2).

Learnable activation parameters (AGLU) train in their own parameter group, without weight decay."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from gol.activations import ActivationParameters
from gol.config.schedule import ScheduleConf


def check_schedule(schedule: ScheduleConf) -> None:
    """The schedule's numbers: each out-of-range value is named with the range it must lie in."""
    check_length(schedule)
    at_least = {"ims_per_batch": 1, "base_batch": 1, "checkpoint_period": 1, "log_period": 1, "warmup_iters": 0,
                "max_nonfinite": 0}  # fmt: skip
    for key, low in at_least.items():
        if getattr(schedule, key) < low:
            raise ValueError(f"schedule.{key} must be at least {low}, got {getattr(schedule, key)}")
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


def check_length(schedule: ScheduleConf) -> None:
    """Exactly one of ``epochs`` / ``max_iter``, at least 1, and ``steps`` increasing inside it."""
    if (schedule.epochs is None) == (schedule.max_iter is None):
        raise ValueError("schedule: set exactly one of `epochs` (1x, 2x) or `max_iter` (iteration-based schedules)")
    length_key = "epochs" if schedule.epochs is not None else "max_iter"
    length = getattr(schedule, length_key)
    if length < 1:
        raise ValueError(f"schedule.{length_key} must be at least 1, got {length}")
    steps = list(schedule.steps)
    if any(b <= a for a, b in itertools.pairwise(steps)) or any(not 0 < s < length for s in steps):
        raise ValueError(
            f"schedule.steps must be increasing and within the schedule (0 < step < {length_key}={length}), got {steps}"
        )


def resolve_length(schedule: ScheduleConf, *, iters_per_epoch: int) -> tuple[int, list[int]]:
    """(max_iter, steps in iterations) from an epoch-based (1x, 2x) or iteration-based schedule."""
    check_length(schedule)
    steps = list(schedule.steps)
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


def param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """The trainable parameters: one group with the schedule's weight decay, and, when the model has learnable
    activation parameters (AGLU's lambda and kappa), a second group of those without weight decay, as the
    official APA training does (``custom_keys_weight_decay`` 0 for ``lambda_param`` and ``kappa_param``)."""
    activation = {id(p) for m in model.modules() if isinstance(m, ActivationParameters) for p in m.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]  # each shared parameter once
    groups: list[dict[str, Any]] = [{"params": [p for p in trainable if id(p) not in activation]}]
    no_decay = [p for p in trainable if id(p) in activation]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(
    model: nn.Module, schedule: ScheduleConf, *, steps: Sequence[int]
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    optimizer = torch.optim.SGD(
        param_groups(model), lr=base_lr(schedule), momentum=schedule.momentum, weight_decay=schedule.weight_decay
    )
    factor = partial(
        lr_factor,
        warmup_iters=schedule.warmup_iters,
        warmup_ratio=schedule.warmup_ratio,
        steps=tuple(steps),
        gamma=schedule.gamma,
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
