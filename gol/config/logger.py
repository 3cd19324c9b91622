"""Schema of the ``logger`` group: Weights & Biases settings (the local run record is always written)."""

from __future__ import annotations

from dataclasses import dataclass, field

GROUP = "logger"


@dataclass
class LoggerConf:
    """One W&B run per job. ``mode`` None means: ``WANDB_MODE`` if set, else online when a login exists, else offline."""

    enabled: bool = True
    project: str = "gol"
    entity: str | None = None
    group: str | None = None  # None: the experiment name, or "adhoc"
    job_type: str = "train"
    name: str | None = None  # None: the cell's overrides, e.g. "activation=gumbel,loss=ce"
    tags: list[str] = field(default_factory=list)
    notes: str | None = None
    mode: str | None = None  # "online" | "offline" | "disabled" | None
    # Seconds wandb.init may take before the run logs offline instead (a compute node without internet): with
    # W&B's own start and finish, an unreachable server costs a run under 30 s.
    init_timeout_s: float = 20.0


SCHEMAS = {"logger_schema": LoggerConf}
