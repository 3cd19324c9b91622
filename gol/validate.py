"""Checks of a composed config that its schemas cannot express, run before anything is built."""

from __future__ import annotations

from hydra.utils import get_class
from omegaconf import DictConfig

from gol.activations.calibration import Fracal
from gol.build import instantiate
from gol.distributed import check_device_name
from gol.evaluation.api import ENGINES, PROTOCOLS, SEGM_AREAS
from gol.losses import check_pair
from gol.models.weights import resolve_weights
from gol.optim import check_schedule

_IOU_TYPES = ("bbox", "segm")


def validate(cfg: DictConfig) -> None:
    """Raise a one-line ``ValueError`` naming the problem and the fix."""
    check_device_name(cfg.device)
    check_pair(get_class(cfg.activation._target_), get_class(cfg.loss._target_))
    check_calibration(cfg)
    instantiate(cfg.activation)  # the activation's own checks (e.g. AGLU's init_lambda > 0); cheap, no data
    check_schedule(cfg.schedule)
    check_weight_files(cfg.detector)
    if cfg.eval.engine not in ENGINES:
        raise ValueError(f"eval.engine={cfg.eval.engine!r} is unknown; use one of {', '.join(ENGINES)}")
    unknown = sorted(set(cfg.eval.iou_types) - set(_IOU_TYPES))
    if unknown:
        raise ValueError(f"eval.iou_types holds {unknown}; use a subset of {list(_IOU_TYPES)}")
    if cfg.eval.segm_area not in SEGM_AREAS:
        raise ValueError(
            f"eval.segm_area={cfg.eval.segm_area!r} is unknown; use box (segm areas from boxes, mmdetection) or "
            "mask (from masks, detectron2)"
        )
    check_protocols(cfg.eval)
    if cfg.eval.batch_size < 1:
        raise ValueError(f"eval.batch_size (test images per batch) must be at least 1, got {cfg.eval.batch_size}")
    if cfg.num_workers < 0:
        raise ValueError(f"num_workers must be 0 (load in the training process) or more, got {cfg.num_workers}")


def check_calibration(cfg: DictConfig) -> None:
    """``cfg.calibration``'s settings are in range and its loss's scores can be calibrated."""
    node = cfg.get("calibration")
    if node is None or "_target_" not in node:
        return
    loss = get_class(cfg.loss._target_)
    if not getattr(loss, "calibratable", True):
        raise ValueError(
            f"{loss.__name__} has its own test-time scores, which FRACAL does not cover; use calibration=none"
        )
    calibration = get_class(node._target_)
    if not issubclass(calibration, Fracal):
        raise ValueError(f"calibration._target_={node._target_} is no calibration; use calibration=none or fracal")
    calibration.check_options(**{str(k): v for k, v in node.items() if not str(k).startswith("_")})


def check_protocols(conf: DictConfig) -> None:
    """eval.protocols, dets_per_category and infer_topk make sense together."""
    protocols = list(conf.protocols)
    if "standard" not in protocols or not set(protocols) <= set(PROTOCOLS) or len(set(protocols)) != len(protocols):
        raise ValueError(
            f"eval.protocols={protocols} must list standard (LVIS AP, every run's table) and may add fixed "
            "(AP-fixed) and pooled (AP-pool), e.g. eval.protocols=[standard,fixed]"
        )
    if conf.dets_per_category < 1:
        raise ValueError(
            f"eval.dets_per_category must be at least 1 (AP-fixed uses 10000), got {conf.dets_per_category}"
        )
    if conf.infer_topk is not None and conf.infer_topk < 1:
        raise ValueError(f"eval.infer_topk must be null or at least 1 (AP-fixed uses 10000), got {conf.infer_topk}")
    if conf.infer_topk_per_image < 1:
        raise ValueError(f"eval.infer_topk_per_image must be at least 1, got {conf.infer_topk_per_image}")
    if conf.errors and conf.engine != "hotcoco":
        raise ValueError("eval.errors=true (the TIDE breakdown) comes from hotcoco: keep eval.engine=hotcoco")


def check_weight_files(detector: DictConfig) -> None:
    """Every weights file a detector option names exists (or, with ``allow_download``, names torchvision weights).

    A missing ImageNet file is refused here, before anything is built or queued, naming the file and where it
    comes from; training from scratch is the explicit ``detector.weights_backbone=null``.
    """
    if detector.get("allow_download", False):
        return  # names of torchvision weights are resolved by the builder, which knows their enum
    for key in ("weights", "weights_backbone"):
        value = detector.get(key)
        if value is not None:
            resolve_weights(str(value), config_key=f"detector.{key}", allow_download=False, enum_type=None)
