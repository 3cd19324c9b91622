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

    # "hotcoco": hotcoco's LVIS evaluation on the detections lvis-api evaluates, equal to it on every metric
    # (tests/evaluation); "lvis": lvis-api itself, the reference.
    engine: str = "hotcoco"
    iou_types: list[str] = field(default_factory=lambda: ["bbox", "segm"])
    batch_size: int = 4
    max_dets: int = 300
    # Area of a segm detection for APs/APm/APl: "mask" (its mask's pixels; detectron2, lvis-api on segm results
    # without bbox) or "box" (its box's w*h; lvis-api on segm results with bbox, as mmdetection 2.x and the
    # paper's numbers). Recorded in metrics.json as eval.segm_area.
    segm_area: str = "mask"
    # Protocols evaluated: "standard" (LVIS AP, always), "fixed" (AP-fixed) and "pooled" (AP-pool), Dave et al.
    # 2021; the last two keep the top dets_per_category detections of each category, with no per-image cap.
    protocols: list[str] = field(default_factory=lambda: ["standard"])
    dets_per_category: int = 10_000
    # AP-fixed needs more detections per category than 300 per image leave: with infer_topk=K, inference lifts
    # the per-image cap to infer_topk_per_image and keeps the top K detections of each category over the split
    # (large-vocab-devil's infer_topk). null: the detector's own per-image cap.
    infer_topk: int | None = None
    infer_topk_per_image: int = 3000
    # Also break AP50 down by error type (TIDE: classification, localisation, both, duplicates, background, missed)
    # per frequency group, from hotcoco: metrics.json's <type>_errors_<group> blocks, gol-figures' errors figure.
    errors: bool = False


@dataclass
class TrainConfig:
    # Component groups: each option extends its own schema (gol/config/<group>.py), so these are typed per option.
    activation: Any = MISSING
    loss: Any = MISSING
    calibration: Any = MISSING  # test-time only (gol/config/calibration.py)
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
