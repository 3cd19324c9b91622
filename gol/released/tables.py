"""The cells of each paper table (one experiment of ``experiments/`` each) with their released config files."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gol.released import common
from gol.released.cell import ReleasedCell, Setting, config_value, show_value

_ACT_FILES = {
    ("sigmoid", "maskrcnn_r50_fpn"): f"{common.ACT}/r50_4x4_1x.py",
    ("softmax", "maskrcnn_r50_fpn"): f"{common.ACT}/r50_4x4_1x_softmax.py",
    ("gumbel", "maskrcnn_r50_fpn"): f"{common.ACT}/gumbel/gumbel_r50_4x4_1x.py",
    ("sigmoid", "maskrcnn_r101_fpn"): f"{common.ACT}/r101_4x4_1x.py",
    ("softmax", "maskrcnn_r101_fpn"): f"{common.ACT}/r101_4x4_1x_softmax.py",
    ("gumbel", "maskrcnn_r101_fpn"): f"{common.ACT}/gumbel/gumbel_r101_4x4_1x.py",
    ("sigmoid", "maskrcnn_x101_fpn"): f"{common.ACT}/x101_4x4_1x.py",
    ("softmax", "maskrcnn_x101_fpn"): f"{common.ACT}/x101_4x4_1x_softmax.py",
    ("gumbel", "maskrcnn_x101_fpn"): f"{common.ACT}/gumbel/gumbel_x101_4x4_1x.py",
    ("sigmoid", "cascade_r101_fpn"): f"{common.ACT}/cascade_r50_4x4_1x.py (ResNet-101: its base sets depth=101)",
    ("softmax", "cascade_r101_fpn"): f"{common.ACT}/cascade_r50_4x4_1x_softmax.py (ResNet-101)",
    ("gumbel", "cascade_r101_fpn"): f"{common.ACT}/gumbel/gumbel_cascade_r50_4x4_1x.py (ResNet-101)",
    ("softmax", "htc_r101_fpn"): f"{common.ACT}/htc_r101_4x4_1x_softmax.py",
    ("gumbel", "htc_r101_fpn"): f"{common.ACT}/gumbel/gumbel_htc_r101_4x4_1x.py",
}
_INIT = {"sigmoid": (0.001, -6.5), "softmax": (0.001, -6.5), "gumbel": (0.001, -2.0)}


def _plain_activation_cell(
    activation: str, detector: str, *, epochs: int, rfs: bool, version: str = "v1"
) -> list[Setting]:
    weight, bias = _INIT[activation]
    x101 = detector == "maskrcnn_x101_fpn" and activation != "gumbel"
    return [
        *common.data(version),
        *common.sampler(rfs),
        *common.schedule(epochs, batch=4 if x101 and activation == "softmax" else 16, warmup=1000 if x101 else 500, amp=x101),
        *common.detector(detector, nms=0.5),
        *common.activation(activation, weight=weight, bias=bias, scoring="softmax" if activation == "sigmoid" else "own"),
        *common.ce(activation),
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
                    "sigmoid": f"{common.ACT}/r50_{rfs}4x4_{sched}.py",
                    "softmax": f"{common.ACT}/r50_{rfs}4x4_{sched}_softmax.py",
                    "gumbel": f"{common.ACT}/gumbel/gumbel_r50_{rfs}4x4_{sched}.py",
                }[activation]
                cells.append(ReleasedCell(
                    "schedule_sampler", {"activation": activation, "schedule": sched, "sampler": sampler}, config,
                    tuple(_plain_activation_cell(activation, "maskrcnn_r50_fpn", epochs=epochs, rfs=bool(rfs))),
                ))  # fmt: skip
    return cells


def _losses() -> list[ReleasedCell]:
    table: dict[tuple[str, str], tuple[str | None, str, float, float, float, str]] = {
        # (loss, activation): (config, init, weight, bias, test NMS, note)
        ("eql", "sigmoid"): (f"{common.GOLCFG}/eql_r50_4x4_1x.py", "normal", 0.01, 0.0, 0.5, ""),
        ("eql", "gumbel"): (f"{common.GOLCFG}/eql_r50_4x4_2x_gumbel.py", "constant", 0.001, -2.0, 0.3,
                            "only a 2x EQL-Gumbel config was released: its settings, on the table's 1x schedule"),
        ("droploss", "sigmoid"): (f"{common.GOLCFG}/droploss_r50_4x4_1x.py", "constant", 0.01, -6.9, 0.5, ""),
        ("droploss", "gumbel"): (f"{common.GOLCFG}/droploss_r50_4x4_1x_gumbel.py", "constant", 0.001, -2.0, 0.3, ""),
        ("federated", "sigmoid"): (f"{common.DEV} configs/fedloss/fedloss_r50_4x4_1x.py", "constant", 0.01, -6.5, 0.5, ""),
        ("federated", "gumbel"): (f"{common.DEV} configs/fedloss/fedloss_r50_4x4_1x_gumbel.py", "constant", 0.01, -2.0, 0.5, ""),
    }  # fmt: skip
    losses: dict[str, Callable[[], list[Setting]]] = {
        "eql": common.eql,
        "droploss": common.droploss,
        "federated": common.federated,
    }
    cells = []
    for (loss, activation), (config, init, weight, bias, nms, note) in table.items():
        settings = [
            *common.data("v1"), *common.sampler(False), *common.schedule(12), *common.detector("maskrcnn_r50_fpn", nms=nms),
            *common.activation(activation, init=init, weight=weight, bias=bias), *losses[loss](),
        ]  # fmt: skip
        cells.append(ReleasedCell("losses", {"loss": loss, "activation": activation}, config, tuple(settings), note))
    return cells


def _gol(
    detector: str = "maskrcnn_r50_fpn", *, normed_mask: bool = True, rfs: bool = True, version: str = "v1"
) -> list[Setting]:
    return [
        *common.data(version), *common.sampler(rfs), *common.schedule(24), *common.detector(detector, nms=0.3, normed_mask=normed_mask),
        *common.activation("gumbel", weight=0.001, bias=-2.0), *common.droploss(0.0011 if version == "v1" else 0.00177),
    ]  # fmt: skip


def _gol_ablation() -> list[ReleasedCell]:
    files = {
        (False, "random"): f"{common.GOLCFG}/droploss_r50_4x4_2x_gumbel.py",
        (True, "random"): f"{common.GOLCFG}/droploss_normed_mask_r50_4x4_2x_gumbel.py",
        (True, "rfs_ceil"): f"{common.GOLCFG}/droploss_normed_mask_r50_rfs_4x4_2x_gumbel.py",
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
            config = f"{common.ACT}/gumbel/gumbel_r50_4x4_{sched}_lvis_v05.py" if activation == "gumbel" else None
            note = (
                ""
                if config
                else f"no released config (closest: {common.ACT}/r50_rfs_4x4_2x_softmax_lvisv0.5.py, with RFS)"
            )
            cells.append(ReleasedCell(
                "lvis_v05", {"activation": activation, "schedule": sched}, config,
                tuple(_plain_activation_cell(activation, "maskrcnn_r50_fpn", epochs=epochs, rfs=False, version="v0.5")),
                note,
            ))  # fmt: skip
    return cells


def _sota() -> list[ReleasedCell]:
    seesaw = [
        *common.data("v1"), *common.sampler(True), *common.schedule(24, batch_text="8 GPUs x samples_per_gpu=2"),
        *common.detector("maskrcnn_r50_fpn", nms=0.5, temperature=20.0),
        Setting("activation._target_", "gol.activations.Softmax", "softmax over the class logits"),
        Setting("activation.scoring", "own", "SeesawLoss custom_activation: softmax(z) x P(object)"),
        Setting("loss._target_", "gol.losses.seesaw.SeesawLoss", "SeesawLoss"),
        Setting("loss.p", 0.8, "p=0.8"), Setting("loss.q", 2.0, "q=2.0"), Setting("loss.eps", 0.01, "eps=1e-2"),
        Setting("loss.numerics", "official", "seesaw_loss.py as released"),
        common.unmatched("SeesawLoss cum_samples per GPU (mmdet's DDP: broadcast_buffers=False)",
                   "torch DDP broadcasts rank 0's buffers, so every rank counts with rank 0's cum_samples"),
    ]  # fmt: skip
    rfs = _plain_activation_cell("softmax", "maskrcnn_r50_fpn", epochs=24, rfs=True)
    return [
        ReleasedCell("sota", {"cell": "sota_rfs"}, f"{common.ACT}/r50_rfs_4x4_2x_softmax.py", tuple(rfs)),
        ReleasedCell("sota", {"cell": "sota_seesaw"},
                     f"{common.MMDET} configs/seesaw_loss/mask_rcnn_r50_fpn_sample1e-3_seesaw_loss_mstrain_2x_lvis_v1.py",
                     tuple(seesaw)),
        ReleasedCell("sota", {"cell": "sota_gol_r50"}, f"{common.GOLCFG}/droploss_normed_mask_r50_rfs_4x4_2x_gumbel.py",
                     tuple(_gol())),
        ReleasedCell("sota", {"cell": "sota_gol_r101"}, f"{common.GOLCFG}/droploss_normed_mask_r101_rfs_4x4_2x_gumbel.py",
                     tuple(_gol("maskrcnn_r101_fpn"))),
        ReleasedCell("sota", {"cell": "sota_gol_r50_lvis_v05"},
                     f"{common.GOLCFG}/droploss_normed_mask_r50_lvis05_rfs_4x4_2x_gumbel.py", tuple(_gol(version="v0.5"))),
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
        got = {k: show_value(config_value(resolved, k) if "." in k else choices.get(k)) for k in cell.choices}
        if got == dict(cell.choices):
            return cell
    return None
