"""The released configs behind the paper's tables: every setting of every paper cell, as data.

Each cell of a paper table (an experiment of ``experiments/`` and one choice per swept group) maps to the
configuration file its published number came from (kostas1515/GOL, mmdetection 2.21; the Federated-loss runs in
kostas1515/mmdetection_v2.21_dev; Seesaw in open-mmlab/mmdetection), and each setting of that file to the ``gol``
config key and value that reproduce it. Three uses, one source:

* ``docs/fidelity.md`` is rendered from it (``python -m gol.released``; a test keeps the file current);
* a test composes every paper cell and checks each key holds the listed value, so experiments cannot drift;
* a run records the settings it changed away from its released config (``deviations``), and ``gol-tables``
  marks such rows, so a table never passes an ablation off as the paper's cell.

A setting ``gol`` cannot reproduce is listed with ``matched=False`` and the reason; it is never a deviation.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GOL = "kostas1515/GOL"
DEV = "kostas1515/mmdetection_v2.21_dev"
MMDET = "open-mmlab/mmdetection v2.21"
_ACT = f"{GOL} configs/activations"
_GOLCFG = f"{GOL} configs/gol"


@dataclass(frozen=True)
class Setting:
    """One setting of a released config and the ``gol`` key that reproduces it.

    Attributes:
        key: dotted ``gol`` config key, e.g. ``detector.box_nms_thresh``.
        value: the value that key holds in the paper cell (a file name for ``*weights*`` keys).
        official: what the released config says (its key and value, or where it comes from).
        matched: False when ``gol`` cannot reproduce it; ``why`` says what differs.
    """

    key: str  # "" for a setting no key holds (always so in gol when matched; not reproducible when not)
    value: Any
    official: str
    matched: bool = True
    why: str = ""

    def holds(self, actual: Any) -> bool:
        """Whether a resolved config value equals this setting's value (file keys compare the file name)."""
        if "weights" in self.key and isinstance(actual, str) and isinstance(self.value, str):
            return Path(actual).name == self.value
        if isinstance(self.value, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
            return float(actual) == self.value
        if isinstance(self.value, (list, tuple)) and isinstance(actual, (list, tuple)):
            return list(actual) == list(self.value)
        return bool(actual == self.value)


@dataclass(frozen=True)
class ReleasedCell:
    """A paper cell: its experiment, its swept choices, its released config and every setting of it."""

    experiment: str
    choices: Mapping[str, str]
    config: str | None  # repository and file, or None when no released config exists for this cell
    settings: tuple[Setting, ...]
    note: str = ""

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.choices.items())

    def deviations(self, resolved: Mapping[str, Any]) -> list[str]:
        """``key=value`` for every matched setting the resolved config holds another value for."""
        found = []
        for s in self.settings:
            if not s.matched or not s.key:
                continue
            actual = _get(resolved, s.key)
            if not s.holds(actual):
                found.append(f"{s.key}={_show(actual)}")
        return found


@dataclass(frozen=True)
class _Missing:
    def __repr__(self) -> str:
        return "<absent>"


MISSING_KEY = _Missing()


def _get(cfg: Mapping[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return MISSING_KEY
        node = node[part]
    return node


def _show(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# -- the settings every released mmdetection 2.21 config shares --------------------------------------------------
def _schedule(
    epochs: int, *, batch: int = 16, warmup: int = 500, amp: bool = False, batch_text: str | None = None
) -> list[Setting]:
    steps = [8, 11] if epochs == 12 else [16, 22]
    src = f"{MMDET} configs/_base_/schedules/schedule_{'1x' if epochs == 12 else '2x'}.py"
    out = [
        Setting("schedule.epochs", epochs, f"runner max_epochs={epochs} ({src})"),
        Setting("schedule.steps", steps, f"lr_config step={steps}"),
        Setting("schedule.gamma", 0.1, "lr_config gamma 0.1 (mmcv default)"),
        Setting("schedule.lr", 0.02, "optimizer SGD lr=0.02"),
        Setting("schedule.momentum", 0.9, "optimizer momentum=0.9"),
        Setting("schedule.weight_decay", 0.0001, "optimizer weight_decay=0.0001"),
        Setting("schedule.grad_clip", None, "optimizer_config grad_clip=None"),
        Setting("schedule.warmup_iters", warmup, f"lr_config warmup='linear', warmup_iters={warmup}"),
        Setting("schedule.warmup_ratio", 0.001, "lr_config warmup_ratio=0.001"),
        Setting("schedule.ims_per_batch", batch, batch_text or _batch_text(batch)),
        Setting("schedule.amp", amp, "fp16=dict(loss_scale=512.)" if amp else "no fp16 (fp32)"),
    ]
    if batch != 16:
        out.append(Setting("schedule.scale_lr", False, f"lr 0.02 kept for the global batch of {batch}"))
    else:
        out += [
            Setting("schedule.base_batch", 16, "lr 0.02 is for the global batch of 16"),
            Setting("schedule.scale_lr", True, "lr 0.02 at 16 images (gol scales it when ims_per_batch differs)"),
        ]
    if amp:
        out.append(_unmatched("fp16 static loss scale 512", "torch AMP scales the loss dynamically (GradScaler)"))
    return out


def _unmatched(official: str, why: str) -> Setting:
    """A released setting ``gol`` does not reproduce (no key holds it)."""
    return Setting("", None, official, matched=False, why=why)


def _batch_text(batch: int) -> str:
    return "4 GPUs x samples_per_gpu=4" if batch == 16 else f"4 GPUs x samples_per_gpu={batch // 4}"


def _data(version: str) -> list[Setting]:
    base = "1x_lvis_v1" if version == "v1" else "2x_lvis_v0.5"  # mmdetection has no 1x LVIS v0.5 base
    src = f"{MMDET} configs/lvis/mask_rcnn_r50_fpn_sample1e-3_mstrain_{base}.py"
    return [
        Setting("dataset._target_", "gol.data.build_lvis", f"LVISV1Dataset / LVISV05Dataset ({src})"),
        Setting("dataset.version", version, f"LVIS {version}"),
        Setting("dataset.train_sizes", [640, 672, 704, 736, 768, 800], "Resize img_scale (1333, 640..800), multiscale"),
        Setting("dataset.max_size", 1333, "Resize keep_ratio, longer side <= 1333"),
        Setting("dataset.test_size", 800, "test img_scale (1333, 800)"),
        Setting("dataset.flip_prob", 0.5, "RandomFlip flip_ratio=0.5"),
        Setting("eval.max_dets", 300, "LVIS evaluation, 300 detections per image"),
        Setting("eval.segm_area", "box", "mmdet writes segm results with their boxes: lvis-api takes areas from boxes"),
        _unmatched(
            "mmcv Resize (cv2 bilinear on uint8 images)",
            "torchvision resizes float tensors inside the model (bilinear); padding to 32 is the same",
        ),
    ]


def _sampler(rfs: bool) -> list[Setting]:
    if not rfs:
        return [
            Setting("sampler._target_", "gol.data.samplers.RandomSampler", "ClassBalancedDataset oversample_thr=0.0")
        ]
    return [
        Setting("sampler._target_", "gol.data.samplers.RepeatFactorSampler", "ClassBalancedDataset (RFS)"),
        Setting("sampler.threshold", 0.001, "oversample_thr=0.001"),
        Setting("sampler.rounding", "ceil", "ClassBalancedDataset repeats math.ceil(r(I)) times"),
    ]


_WEIGHTS = {
    "maskrcnn_r50_fpn": ("resnet50-0676ba61.pth", "init_cfg Pretrained torchvision://resnet50"),
    "maskrcnn_r101_fpn": ("resnet101-63fe2227.pth", "init_cfg Pretrained torchvision://resnet101"),
    "cascade_r101_fpn": ("resnet101-63fe2227.pth", "depth=101, torchvision://resnet101 (the cascade base)"),
    "htc_r101_fpn": ("resnet101-63fe2227.pth", "torchvision://resnet101"),
    "maskrcnn_x101_fpn": ("resnext101_64x4d-ee2c6f71.pth", "open-mmlab://resnext101_64x4d"),
}
_TARGETS = {
    "maskrcnn_r50_fpn": "gol.models.build_maskrcnn_r50_fpn",
    "maskrcnn_r101_fpn": "gol.models.build_maskrcnn_r101_fpn",
    "maskrcnn_x101_fpn": "gol.models.build_maskrcnn_x101_fpn",
    "cascade_r101_fpn": "gol.models.build_cascade_r101_fpn",
    "htc_r101_fpn": "gol.models.build_htc_r101_fpn",
}


def _detector(name: str, *, nms: float, normed_mask: bool = False, temperature: float | None = None) -> list[Setting]:
    cascade = name.startswith(("cascade", "htc"))
    file, src = _WEIGHTS[name]
    out = [
        Setting("detector._target_", _TARGETS[name], "Mask R-CNN FPN" if not cascade else "Cascade / HTC RoI head"),
        Setting("detector.weights_backbone", file, src),
        Setting("detector.weights", None, "no detector checkpoint (load_from=None)"),
        Setting("detector.trainable_backbone_layers", None, "frozen_stages=1: stem and stage 1 frozen (3 trained)"),
        Setting("detector.box_score_thresh", 0.0001, "test_cfg.rcnn.score_thr=0.0001"),
        Setting("detector.box_nms_thresh", nms, f"test_cfg.rcnn.nms iou_threshold={nms}"),
        Setting("detector.box_detections_per_img", 300, "test_cfg.rcnn.max_per_img=300"),
        Setting("detector.box_batch_size_per_image", 512, "train_cfg.rcnn.sampler num=512"),
        Setting("detector.rpn_pre_nms_top_n_train", 2000, "train_cfg.rpn_proposal nms_pre=2000"),
        Setting("detector.rpn_post_nms_top_n_train", 2000 if cascade else 1000,
                f"train_cfg.rpn_proposal max_per_img={2000 if cascade else 1000}"),
        Setting("detector.rpn_pre_nms_top_n_test", 1000, "test_cfg.rpn nms_pre=1000"),
        Setting("detector.rpn_post_nms_top_n_test", 1000, "test_cfg.rpn max_per_img=1000"),
        Setting("detector.normed_mask", normed_mask,
                "mask_head predictor_cfg NormedConv2d tempearture=20" if normed_mask else "plain conv mask logits"),
        Setting("detector.classifier_temperature", temperature,
                f"cls_predictor_cfg NormedLinear tempearture={temperature}" if temperature else "plain Linear fc_cls"),
        Setting("detector.box_loss", "l1", "rpn_head and bbox_head loss_bbox L1Loss(loss_weight=1.0)") if not cascade
        else Setting("", None, "rpn_head SmoothL1Loss(beta=1/9); each stage: SmoothL1Loss(beta=1.0), class-agnostic"),
        Setting("detector.roi_align", "mmdet", "RoIAlign sampling_ratio=0, aligned=True"),
        Setting("detector.backbone_norm", "frozen_stats", "norm_cfg BN requires_grad=True, norm_eval=True"),
        _unmatched("GroupSampler: batches of one aspect-ratio group", "gol's loaders batch in sampler order"),
    ]  # fmt: skip
    return out


def _activation(
    name: str, *, init: str = "constant", weight: float, bias: float, scoring: str = "own"
) -> list[Setting]:
    targets = {"sigmoid": "Sigmoid", "softmax": "Softmax", "gumbel": "Gumbel"}
    init_text = (
        f"init_cfg Constant val={weight}, bias={bias} (fc_cls)" if init == "constant"
        else f"no init_cfg: mmdet's default Normal(std={weight}), bias {bias}"
    )  # fmt: skip
    return [
        Setting("activation._target_", f"gol.activations.{targets[name]}", name),
        Setting("activation.init", init, init_text),
        Setting("activation.init_weight", weight, init_text),
        Setting("activation.init_bias", bias, init_text),
        Setting("activation.scoring", scoring,
                "get_bboxes: softmax over the C + 1 logits (the loss has no custom_activation)" if scoring == "softmax"
                else "scores from the trained activation"),
    ]  # fmt: skip


def _ce(activation: str) -> list[Setting]:
    loss = {
        "sigmoid": "CrossEntropyLoss(use_sigmoid=True)",
        "softmax": "CrossEntropyLoss(use_sigmoid=False)",
        "gumbel": "GumbelCE",
    }[activation]
    return [
        Setting("loss._target_", "gol.losses.cross_entropy.CrossEntropyLoss", loss),
        Setting("loss.background_column", True, "C + 1 classifier outputs"),
        Setting("loss.numerics", "official", f"{loss} as released (Gumbel: logit and loss clamps)"),
    ]


def _eql() -> list[Setting]:
    return [
        Setting("loss._target_", "gol.losses.eql.EQLLoss", "EQL (mmdet/models/losses/eql.py)"),
        Setting("loss.lambda_", 0.0011, "lambda_=0.0011"),
        Setting("loss.numerics", "official", "eql.py as released"),
    ]


def _droploss(lambda_: float = 0.0011) -> list[Setting]:
    return [
        Setting("loss._target_", "gol.losses.droploss.DropLoss", "DropLoss (mmdet/models/losses/droploss.py)"),
        Setting("loss.lambda_", lambda_, f"lambda_={lambda_}"),
        Setting("loss.images_per_group", 4, "statistics per GPU: samples_per_gpu=4"),
        Setting("loss.numerics", "official", "droploss.py as released"),
    ]


def _federated() -> list[Setting]:
    return [
        Setting("loss._target_", "gol.losses.federated.FederatedLoss", f"FedLoss ({DEV} mmdet/models/losses/fedloss.py)"),
        Setting("loss.num_sampled_classes", 50, "fed_loss_num_cat=50"),
        Setting("loss.frequency_power", 0.5, "freq_weight=0.5"),
        Setting("loss.images_per_group", 4, "class set per GPU: samples_per_gpu=4"),
        Setting("loss.numerics", "official", "fedloss.py as released"),
    ]  # fmt: skip


# -- the paper tables ----------------------------------------------------------------------------------------------
_ACT_FILES = {
    ("sigmoid", "maskrcnn_r50_fpn"): f"{_ACT}/r50_4x4_1x.py",
    ("softmax", "maskrcnn_r50_fpn"): f"{_ACT}/r50_4x4_1x_softmax.py",
    ("gumbel", "maskrcnn_r50_fpn"): f"{_ACT}/gumbel/gumbel_r50_4x4_1x.py",
    ("sigmoid", "maskrcnn_r101_fpn"): f"{_ACT}/r101_4x4_1x.py",
    ("softmax", "maskrcnn_r101_fpn"): f"{_ACT}/r101_4x4_1x_softmax.py",
    ("gumbel", "maskrcnn_r101_fpn"): f"{_ACT}/gumbel/gumbel_r101_4x4_1x.py",
    ("sigmoid", "maskrcnn_x101_fpn"): f"{_ACT}/x101_4x4_1x.py",
    ("softmax", "maskrcnn_x101_fpn"): f"{_ACT}/x101_4x4_1x_softmax.py",
    ("gumbel", "maskrcnn_x101_fpn"): f"{_ACT}/gumbel/gumbel_x101_4x4_1x.py",
    ("sigmoid", "cascade_r101_fpn"): f"{_ACT}/cascade_r50_4x4_1x.py (ResNet-101: its base sets depth=101)",
    ("softmax", "cascade_r101_fpn"): f"{_ACT}/cascade_r50_4x4_1x_softmax.py (ResNet-101)",
    ("gumbel", "cascade_r101_fpn"): f"{_ACT}/gumbel/gumbel_cascade_r50_4x4_1x.py (ResNet-101)",
    ("softmax", "htc_r101_fpn"): f"{_ACT}/htc_r101_4x4_1x_softmax.py",
    ("gumbel", "htc_r101_fpn"): f"{_ACT}/gumbel/gumbel_htc_r101_4x4_1x.py",
}
_INIT = {"sigmoid": (0.001, -6.5), "softmax": (0.001, -6.5), "gumbel": (0.001, -2.0)}


def _plain_activation_cell(
    activation: str, detector: str, *, epochs: int, rfs: bool, version: str = "v1"
) -> list[Setting]:
    weight, bias = _INIT[activation]
    x101 = detector == "maskrcnn_x101_fpn" and activation != "gumbel"
    return [
        *_data(version),
        *_sampler(rfs),
        *_schedule(epochs, batch=4 if x101 and activation == "softmax" else 16, warmup=1000 if x101 else 500, amp=x101),
        *_detector(detector, nms=0.5),
        *_activation(activation, weight=weight, bias=bias, scoring="softmax" if activation == "sigmoid" else "own"),
        *_ce(activation),
    ]  # fmt: skip


def _activations() -> list[ReleasedCell]:
    cells = []
    for activation in ("sigmoid", "softmax", "gumbel"):
        for detector in (
            "maskrcnn_r50_fpn",
            "maskrcnn_r101_fpn",
            "maskrcnn_x101_fpn",
            "cascade_r101_fpn",
            "htc_r101_fpn",
        ):
            config = _ACT_FILES.get((activation, detector))
            note = "" if config else "no released config; settings of the softmax HTC config with the sigmoid head"
            if activation == "softmax" and detector == "maskrcnn_x101_fpn":
                note = "samples_per_gpu=1: a global batch of 4 at lr 0.02, so 4x the iterations of the other cells"
            cells.append(ReleasedCell(
                "activations", {"activation": activation, "detector": detector}, config,
                tuple(_plain_activation_cell(activation, detector, epochs=12, rfs=False)), note,
            ))  # fmt: skip
    return cells


def _schedule_sampler() -> list[ReleasedCell]:
    cells = []
    for activation in ("sigmoid", "softmax", "gumbel"):
        for sched, epochs in (("1x", 12), ("2x", 24)):
            for sampler in ("random", "rfs_ceil"):
                rfs = "rfs_" if sampler == "rfs_ceil" else ""
                config = {
                    "sigmoid": f"{_ACT}/r50_{rfs}4x4_{sched}.py",
                    "softmax": f"{_ACT}/r50_{rfs}4x4_{sched}_softmax.py",
                    "gumbel": f"{_ACT}/gumbel/gumbel_r50_{rfs}4x4_{sched}.py",
                }[activation]
                cells.append(ReleasedCell(
                    "schedule_sampler", {"activation": activation, "schedule": sched, "sampler": sampler}, config,
                    tuple(_plain_activation_cell(activation, "maskrcnn_r50_fpn", epochs=epochs, rfs=bool(rfs))),
                ))  # fmt: skip
    return cells


def _losses() -> list[ReleasedCell]:
    table: dict[tuple[str, str], tuple[str | None, str, float, float, float, str]] = {
        # (loss, activation): (config, init, weight, bias, test NMS, note)
        ("eql", "sigmoid"): (f"{_GOLCFG}/eql_r50_4x4_1x.py", "normal", 0.01, 0.0, 0.5, ""),
        ("eql", "gumbel"): (f"{_GOLCFG}/eql_r50_4x4_2x_gumbel.py", "constant", 0.001, -2.0, 0.3,
                            "only a 2x EQL-Gumbel config was released: its settings, on the table's 1x schedule"),
        ("droploss", "sigmoid"): (f"{_GOLCFG}/droploss_r50_4x4_1x.py", "constant", 0.01, -6.9, 0.5, ""),
        ("droploss", "gumbel"): (f"{_GOLCFG}/droploss_r50_4x4_1x_gumbel.py", "constant", 0.001, -2.0, 0.3, ""),
        ("federated", "sigmoid"): (f"{DEV} configs/fedloss/fedloss_r50_4x4_1x.py", "constant", 0.01, -6.5, 0.5, ""),
        ("federated", "gumbel"): (f"{DEV} configs/fedloss/fedloss_r50_4x4_1x_gumbel.py", "constant", 0.01, -2.0, 0.5, ""),
    }  # fmt: skip
    losses: dict[str, Callable[[], list[Setting]]] = {"eql": _eql, "droploss": _droploss, "federated": _federated}
    cells = []
    for (loss, activation), (config, init, weight, bias, nms, note) in table.items():
        settings = [
            *_data("v1"), *_sampler(False), *_schedule(12), *_detector("maskrcnn_r50_fpn", nms=nms),
            *_activation(activation, init=init, weight=weight, bias=bias), *losses[loss](),
        ]  # fmt: skip
        cells.append(ReleasedCell("losses", {"loss": loss, "activation": activation}, config, tuple(settings), note))
    return cells


def _gol(
    detector: str = "maskrcnn_r50_fpn", *, normed_mask: bool = True, rfs: bool = True, version: str = "v1"
) -> list[Setting]:
    return [
        *_data(version), *_sampler(rfs), *_schedule(24), *_detector(detector, nms=0.3, normed_mask=normed_mask),
        *_activation("gumbel", weight=0.001, bias=-2.0), *_droploss(0.0011 if version == "v1" else 0.00177),
    ]  # fmt: skip


def _gol_ablation() -> list[ReleasedCell]:
    files = {
        (False, "random"): f"{_GOLCFG}/droploss_r50_4x4_2x_gumbel.py",
        (True, "random"): f"{_GOLCFG}/droploss_normed_mask_r50_4x4_2x_gumbel.py",
        (True, "rfs_ceil"): f"{_GOLCFG}/droploss_normed_mask_r50_rfs_4x4_2x_gumbel.py",
    }
    cells = []
    for normed in (False, True):
        for sampler in ("random", "rfs_ceil"):
            config = files.get((normed, sampler))
            cells.append(ReleasedCell(
                "gol_ablation", {"detector.normed_mask": str(normed).lower(), "sampler": sampler}, config,
                tuple(_gol(normed_mask=normed, rfs=sampler == "rfs_ceil")),
                "" if config else "no released config (RFS without the normalised mask head): the GOL recipe's settings",
            ))  # fmt: skip
    return cells


def _lvis_v05() -> list[ReleasedCell]:
    cells = []
    for activation in ("softmax", "gumbel"):
        for sched, epochs in (("1x", 12), ("2x", 24)):
            config = f"{_ACT}/gumbel/gumbel_r50_4x4_{sched}_lvis_v05.py" if activation == "gumbel" else None
            note = (
                "" if config else f"no released config (closest: {_ACT}/r50_rfs_4x4_2x_softmax_lvisv0.5.py, with RFS)"
            )
            cells.append(ReleasedCell(
                "lvis_v05", {"activation": activation, "schedule": sched}, config,
                tuple(_plain_activation_cell(activation, "maskrcnn_r50_fpn", epochs=epochs, rfs=False, version="v0.5")),
                note,
            ))  # fmt: skip
    return cells


def _sota() -> list[ReleasedCell]:
    seesaw = [
        *_data("v1"), *_sampler(True), *_schedule(24, batch_text="8 GPUs x samples_per_gpu=2"),
        *_detector("maskrcnn_r50_fpn", nms=0.5, temperature=20.0),
        Setting("activation._target_", "gol.activations.Softmax", "softmax over the class logits"),
        Setting("activation.scoring", "own", "SeesawLoss custom_activation: softmax(z) x P(object)"),
        Setting("loss._target_", "gol.losses.seesaw.SeesawLoss", "SeesawLoss"),
        Setting("loss.p", 0.8, "p=0.8"), Setting("loss.q", 2.0, "q=2.0"), Setting("loss.eps", 0.01, "eps=1e-2"),
        Setting("loss.numerics", "official", "seesaw_loss.py as released"),
        _unmatched("SeesawLoss cum_samples per GPU (mmdet's DDP: broadcast_buffers=False)",
                   "torch DDP broadcasts rank 0's buffers, so every rank counts with rank 0's cum_samples"),
    ]  # fmt: skip
    rfs = _plain_activation_cell("softmax", "maskrcnn_r50_fpn", epochs=24, rfs=True)
    return [
        ReleasedCell("sota", {"cell": "sota_rfs"}, f"{_ACT}/r50_rfs_4x4_2x_softmax.py", tuple(rfs)),
        ReleasedCell("sota", {"cell": "sota_seesaw"},
                     f"{MMDET} configs/seesaw_loss/mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_mstrain_2x_lvis_v1.py",
                     tuple(seesaw)),
        ReleasedCell("sota", {"cell": "sota_gol_r50"}, f"{_GOLCFG}/droploss_normed_mask_r50_rfs_4x4_2x_gumbel.py",
                     tuple(_gol())),
        ReleasedCell("sota", {"cell": "sota_gol_r101"}, f"{_GOLCFG}/droploss_normed_mask_r101_rfs_4x4_2x_gumbel.py",
                     tuple(_gol("maskrcnn_r101_fpn"))),
        ReleasedCell("sota", {"cell": "sota_gol_r50_lvis_v05"},
                     f"{_GOLCFG}/droploss_normed_mask_r50_lvis05_rfs_4x4_2x_gumbel.py", tuple(_gol(version="v0.5"))),
    ]  # fmt: skip


def released_cells() -> list[ReleasedCell]:
    """Every paper cell, table by table (the experiments of ``experiments/`` other than ``demo``)."""
    return [*_activations(), *_schedule_sampler(), *_losses(), *_gol_ablation(), *_lvis_v05(), *_sota()]


def find_cell(experiment: str | None, choices: Mapping[str, Any], resolved: Mapping[str, Any]) -> ReleasedCell | None:
    """The paper cell of ``experiment`` whose swept choices all match (None if it has none).

    ``choices`` are Hydra's group choices; a swept key with a dot (``detector.normed_mask``) is read from the
    ``resolved`` config.
    """
    if not experiment:
        return None
    for cell in released_cells():
        if cell.experiment != experiment:
            continue
        got = {k: _show(_get(resolved, k) if "." in k else choices.get(k)) for k in cell.choices}
        if got == dict(cell.choices):
            return cell
    return None


# -- the rendered table (docs/fidelity.md) --------------------------------------------------------------------------
def _rows(settings: Iterable[Setting]) -> list[str]:
    rows = []
    for s in settings:
        if s.matched and not s.key:
            rows.append(f"| {s.official} | (always) | | yes |")
        elif s.matched:
            rows.append(f"| {s.official} | `{s.key}` | `{_show(s.value)}` | yes |")
        else:
            rows.append(f"| {s.official} | (none) | | no: {s.why} |")
    return rows


def render_markdown() -> str:
    """docs/fidelity.md: per table, the settings all its cells share, then each cell's own."""
    out = [
        "# Fidelity: the paper's cells against the released configs",
        "",
        "Generated from `gol/released.py` by `python -m gol.released > docs/fidelity.md` (a test keeps it current,",
        "and another composes every cell and checks each `gol` value below). Sources: "
        f"{GOL} (mmdetection 2.21), {DEV} (Federated loss), {MMDET} (bases, Seesaw).",
        "These values are what `variant=paper` (every experiment's default) composes; `variant=improved` changes",
        "only the keys the README lists. A run that changes a matched setting records it as a deviation.",
        "",
    ]
    by_table: dict[str, list[ReleasedCell]] = {}
    for cell in released_cells():
        by_table.setdefault(cell.experiment, []).append(cell)
    for table, cells in by_table.items():
        shared = [s for s in cells[0].settings if all(s in c.settings for c in cells)]
        out += [f"## experiment={table}", "", "Settings of every cell:", "",
                "| released config | gol key | gol value | matched |", "|---|---|---|---|", *_rows(shared), ""]  # fmt: skip
        for cell in cells:
            own = [s for s in cell.settings if s not in shared]
            source = f"`{cell.config}`" if cell.config else "**no released config**"
            out += [
                f"### {cell.label}",
                "",
                f"Released config: {source}." + (f" {cell.note}." if cell.note else ""),
                "",
            ]
            if own:
                out += ["| released config | gol key | gol value | matched |", "|---|---|---|---|", *_rows(own), ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print docs/fidelity.md."""
    del argv
    sys.stdout.write(render_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
