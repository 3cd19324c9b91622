"""Schema of the primary config ``conf/train.yaml``: one ablation cell."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from gol.config.logger import LoggerConf
from gol.config.paths import PathsConf
from gol.config.schedule import ScheduleConf

GROUP = None  # the primary config's schema lives at the root of the ConfigStore


@dataclass
class EvalConf:
    """LVIS evaluation after training (lvis-api semantics: 300 detections per image, federated categories)."""

    # "fast": gol's vectorised engine, equal to lvis-api bit for bit (tests/evaluation); "lvis": lvis-api itself.
    engine: str = "fast"
    iou_types: list[str] = field(default_factory=lambda: ["bbox", "segm"])
    batch_size: int = 4
    max_dets: int = 300
    # Area of a segm detection for APs/APm/APl: "mask" (its mask's pixels; detectron2, lvis-api on segm results
    # without bbox) or "box" (its box's w*h; lvis-api on segm results with bbox, as mmdetection 2.x and the
    # paper's numbers). Recorded in metrics.json as eval.segm_area.
    segm_area: str = "mask"


@dataclass
class TrainConfig:
    # Component groups: each option extends its own schema (gol/config/<group>.py), so these are typed per option.
    activation: Any = MISSING
    loss: Any = MISSING
    detector: Any = MISSING
    dataset: Any = MISSING
    sampler: Any = MISSING
    schedule: ScheduleConf = MISSING
    logger: LoggerConf = MISSING
    paths: PathsConf = MISSING
    eval: EvalConf = field(default_factory=EvalConf)
    seed: int = 0
    device: str = "auto"  # "auto" picks CUDA when available
    num_workers: int = 2
    threads: int | None = None  # torch CPU threads; null keeps torch's default (one per core)
    deterministic: bool = False  # torch.use_deterministic_algorithms, for exact resume checks on GPU
    tags: list[str] = field(default_factory=list)


SCHEMAS = {"train_schema": TrainConfig}
