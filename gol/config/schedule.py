"""Schema of the ``schedule`` group: optimiser, learning-rate schedule, batch and checkpoint cadence."""

from __future__ import annotations

from dataclasses import dataclass, field

GROUP = "schedule"


@dataclass
class ScheduleConf:
    """SGD with linear warm-up and multi-step decay (paper-notes section 2: mmdet 2.21 LVIS recipe).

    Length is given either in epochs (``epochs`` with ``steps`` in epochs, the paper's 1x/2x) or in iterations
    (``max_iter`` with ``steps`` in iterations, for short demo and test runs); exactly one of the two is set.
    """

    epochs: int | None = None
    max_iter: int | None = None
    steps: list[int] = field(default_factory=list)  # lr x gamma at each step (epochs or iterations, as above)
    gamma: float = 0.1
    lr: float = 0.02  # for 16 images per batch (4 GPUs x 4), linearly scaled by the engine when ims_per_batch differs
    base_batch: int = 16
    scale_lr: bool = True
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 500
    warmup_ratio: float = 0.001
    ims_per_batch: int = 16  # global batch (all ranks together)
    checkpoint_period: int = 1000  # iterations; a checkpoint is also written at the end
    log_period: int = 20  # iterations between loss/lr logs
    max_nonfinite: int = 20  # skipped non-finite steps (in total) before the run stops with an error
    grad_clip: float | None = None
    amp: bool = True  # automatic mixed precision, only ever used on CUDA


SCHEMAS = {"schedule_schema": ScheduleConf}
