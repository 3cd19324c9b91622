"""Initial weights for the detectors: local files by default, torchvision's downloads only when opted in.

Two kinds of weights, each named by a config key:
  ``detector.weights``           a whole detector (e.g. torchvision's COCO Mask R-CNN); the class-dependent
                                 predictor layers are skipped when their shape differs (K differs), and logged.
  ``detector.weights_backbone``  an ImageNet classifier of the backbone (its ``fc`` layer is not used).
A value is a path to a ``state_dict`` saved with ``torch.save`` (a dict of tensors, or a checkpoint holding one
under ``"model"`` or ``"state_dict"``). With ``detector.allow_download=true`` a value may instead name one of
torchvision's weight enums (``"IMAGENET1K_V1"`` or ``"ResNet50_Weights.IMAGENET1K_V1"``), fetched by torchvision.

Every check that can fail runs before training: a missing file is reported by ``resolve_weights`` before the
model is built, and a file for another architecture is reported (with what it seems to be) when loading.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TypeAlias

import torch
from torch import Tensor, nn
from torchvision.models import (
    ResNet50_Weights,
    ResNet101_Weights,
    ResNeXt101_64X4D_Weights,
    WeightsEnum,
    get_weight,
)
from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, MaskRCNN_ResNet50_FPN_Weights

log = logging.getLogger(__name__)

# Layers whose shape depends on the number of classes; they are the only ones allowed to differ. The optional stage
# index covers a cascade's per-stage predictors (``roi_heads.box_predictor.1.``, ``roi_heads.mask_predictor.2.``).
CLASS_DEPENDENT_LAYERS = re.compile(r"roi_heads\.(box_predictor\.|mask_predictor\.(\d+\.)?mask_fcn_logits\.)")
# The classification loss's own state (e.g. Seesaw counts) is a property of a training run, never initialised
# from a weights file; resuming a run is the engine's checkpoint business.
LOSS_PREFIX = "roi_heads.cls_loss."
ACTIVATION_PARAMS = ".activation_params."  # learnable activation parameters, registered under a loss
# BatchNorm's step counter: FrozenBatchNorm2d has none, so files from BN and frozen-BN models both fit.
BN_COUNTER_SUFFIX = "num_batches_tracked"

WeightsSource: TypeAlias = Path | WeightsEnum
# The torchvision weights the paper's detectors start from (named in refusals of a missing file).
_PAPER_WEIGHT_ENUMS: tuple[type[WeightsEnum], ...] = (
    ResNet50_Weights,
    ResNet101_Weights,
    ResNeXt101_64X4D_Weights,
    MaskRCNN_ResNet50_FPN_Weights,
    MaskRCNN_ResNet50_FPN_V2_Weights,
)


class WeightsNotFoundError(FileNotFoundError, ValueError):
    """A configured weights file does not exist (a bad config value too: config checks refuse it as one)."""


class WeightsMismatchError(ValueError):
    """A weights file holds another architecture than the one being built."""


def is_class_dependent(key: str) -> bool:
    """Whether a detector ``state_dict`` key belongs to a class-dependent layer (``CLASS_DEPENDENT_LAYERS``)."""
    return CLASS_DEPENDENT_LAYERS.match(key) is not None


def resolve_weights(
    value: str | None, *, config_key: str, allow_download: bool, enum_type: type[WeightsEnum] | None
) -> WeightsSource | None:
    """Check a configured weights value before anything is built.

    Args:
        value: a path, a torchvision weights name (only with ``allow_download``), or None (no weights).
        config_key: the config key that set ``value`` (named in error messages), e.g. ``"detector.weights"``.
        allow_download: whether a torchvision weights name may be used (downloads on first use).
        enum_type: the enum a bare name such as ``"COCO_V1"`` refers to; None if torchvision has none.

    Raises:
        WeightsNotFoundError: ``value`` is neither an existing file nor (when allowed) a torchvision name.
    """
    if value is None:
        return None
    path = Path(str(value)).expanduser()
    if path.is_file():
        return path
    if allow_download:
        enum = _torchvision_weights(str(value), enum_type)
        if enum is not None:
            return enum
        raise WeightsNotFoundError(
            f"{config_key}={value!r} is neither a file nor a torchvision weights name"
            + (f" (e.g. {enum_type.__name__}.{next(iter(enum_type.__members__))})" if enum_type is not None else "")
        )
    origin = weights_origin(path.name)
    if origin is not None:
        raise WeightsNotFoundError(
            f"{config_key}: weights file not found: {path} ({origin}); download it into paths.weights_root "
            f"(GOL_WEIGHTS), or set {config_key}=null to train from scratch"
        )
    raise WeightsNotFoundError(
        f"{config_key}: weights file not found: {path} (set {config_key} to a local state_dict file, e.g. under "
        f"paths.weights_root (GOL_WEIGHTS), or to null; or set detector.allow_download=true to fetch torchvision's "
        f"weights by name)"
    )


# Weight files the paper's detectors use that torchvision does not publish (mmcv's ``open-mmlab://`` names).
OPEN_MMLAB_FILES = {
    "resnext101_64x4d-ee2c6f71.pth": (
        "open-mmlab://resnext101_64x4d, the ImageNet ResNeXt-101 64x4d of the official X101 configs: "
        "https://download.openmmlab.com/pretrain/third_party/resnext101_64x4d-ee2c6f71.pth"
    ),
}


def weights_origin(file_name: str) -> str | None:
    """Where a weights file of this name comes from (a torchvision enum and its URL, or open-mmlab's), if known."""
    if file_name in OPEN_MMLAB_FILES:
        return OPEN_MMLAB_FILES[file_name]
    for enum_type in _PAPER_WEIGHT_ENUMS:
        for member in enum_type:
            if member.url.rsplit("/", 1)[-1] == file_name:
                return f"torchvision's {enum_type.__name__}.{member.name}: {member.url}"
    return None


def read_state_dict(source: WeightsSource, *, config_key: str) -> dict[str, Tensor]:
    """The ``state_dict`` in a local file (read on CPU, tensors only) or of a torchvision weights enum."""
    if isinstance(source, WeightsEnum):
        log.info("downloading torchvision weights %s", source)
        return dict(source.get_state_dict(progress=False, check_hash=True))
    log.info("reading weights from %s", source)
    try:
        loaded = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch's unpickler fails on foreign files with assorted error types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsMismatchError(f"{config_key}={source} cannot be read as a torch state_dict: {reason}") from error
    for wrapper_key in ("model", "state_dict"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper_key), Mapping):
            loaded = loaded[wrapper_key]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise WeightsMismatchError(
            f"{config_key}={source} does not hold a state_dict (a mapping of names to tensors, possibly under "
            "'model' or 'state_dict')"
        )
    return dict(loaded)


def load_detector_weights(
    model: nn.Module, state_dict: Mapping[str, Tensor], *, architecture: str, config_key: str, source: str
) -> None:
    """Load a whole-detector ``state_dict`` into ``model``, skipping class-dependent layers of another shape.

    Raises:
        WeightsMismatchError: any key outside the class-dependent layers is missing, unexpected or of another
            shape (the message says what the file seems to hold).
    """
    own = model.state_dict()
    # A loss's run state (counts, statistics, random streams) is not a weight; a learnable activation's parameters
    # (AGLU's lambda and kappa, registered under the loss) are.
    given = {k: v for k, v in state_dict.items() if not k.startswith(LOSS_PREFIX) or ACTIVATION_PARAMS in k}
    skipped = [k for k, v in given.items() if k in own and is_class_dependent(k) and own[k].shape != v.shape]
    hint = ""
    if "fc.weight" in given and not any(k.startswith("backbone.") for k in given):
        hint = "; it is a backbone classifier: set detector.weights_backbone instead"
    _check_fit(
        own,
        given,
        state_dict,
        tolerated=set(skipped),
        ignored_prefix=LOSS_PREFIX,
        architecture=architecture,
        config_key=config_key,
        source=source,
        hint=hint,
    )
    model.load_state_dict({k: v for k, v in given.items() if k in own and k not in skipped}, strict=False)
    log.info("loaded %d tensors from %s", len(given) - len(skipped), source)
    if skipped:
        log.info(
            "kept the fresh class-dependent layers (the file has another number of classes): %s", ", ".join(skipped)
        )


def load_backbone_weights(
    backbone: nn.Module, state_dict: Mapping[str, Tensor], *, architecture: str, config_key: str, source: str
) -> None:
    """Load an ImageNet classifier ``state_dict`` into a torchvision ResNet (its ``fc`` layer is not used).

    Raises:
        WeightsMismatchError: the file holds another network (e.g. ResNet-50 given to a ResNet-101 backbone, or a
            whole detector).
    """
    own = {k: v for k, v in backbone.state_dict().items() if not k.startswith("fc.")}
    given = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    hint = ""
    if any(k.startswith("backbone.body.") for k in given):
        hint = "; it is a whole detector: set detector.weights instead"
    _check_fit(
        own,
        given,
        state_dict,
        tolerated=set(),
        ignored_prefix=None,
        architecture=architecture,
        config_key=config_key,
        source=source,
        hint=hint,
    )
    backbone.load_state_dict(given, strict=False)
    log.info("loaded %d backbone tensors from %s", len(given), source)


def _check_fit(
    own: Mapping[str, Tensor],
    given: Mapping[str, Tensor],
    whole_file: Mapping[str, Tensor],
    *,
    tolerated: set[str],
    ignored_prefix: str | None,
    architecture: str,
    config_key: str,
    source: str,
    hint: str = "",
) -> None:
    """Raise ``WeightsMismatchError`` unless ``given`` has exactly ``own``'s keys and shapes (up to exceptions).

    ``whole_file`` is the unfiltered ``state_dict``, used only to describe what the file seems to hold.
    """

    def counts(key: str) -> bool:
        return not key.endswith(BN_COUNTER_SUFFIX) and not (ignored_prefix and key.startswith(ignored_prefix))

    missing = [k for k in own if k not in given and counts(k)]
    unexpected = [k for k in given if k not in own and counts(k)]
    reshaped = [k for k in given if k in own and k not in tolerated and own[k].shape != given[k].shape]
    bad = missing + unexpected + reshaped
    if not bad:
        return
    seems = describe_state_dict(whole_file)
    raise WeightsMismatchError(
        f"{config_key}={source} does not fit {architecture}: {len(missing)} missing, {len(unexpected)} unexpected "
        f"and {len(reshaped)} reshaped of {len(own)} keys (first: {bad[0]!r}); the file looks like {seems}{hint}"
    )


def describe_state_dict(state_dict: Mapping[str, Tensor]) -> str:
    """A short human description of what a ``state_dict`` holds, e.g. 'a Mask R-CNN ResNet-50 FPN detector'."""
    if "backbone.stem.0.weight" in state_dict:
        return "a tiny detector (gol.models.build_tiny)"
    prefix = next((k[: -len("layer1.0.conv1.weight")] for k in state_dict if k.endswith("layer1.0.conv1.weight")), None)
    if prefix is None:
        return f"an unknown network ({len(state_dict)} tensors, first {next(iter(state_dict), None)!r})"
    net = _describe_resnet(state_dict, prefix)
    if prefix == "backbone.body.":
        kind = "Mask R-CNN" if any(k.startswith("roi_heads.mask_head.") for k in state_dict) else "Faster R-CNN"
        heads = " with v2 heads" if "roi_heads.box_head.0.0.weight" in state_dict else ""
        cls = state_dict.get("roi_heads.box_predictor.cls_score.weight")
        classes = f", {cls.shape[0]} classifier outputs" if cls is not None else ""
        return f"a {kind} {net} FPN detector{heads}{classes}"
    if prefix == "" and "fc.weight" in state_dict:
        return f"an ImageNet {net} classifier"
    return f"a {net} network under {prefix!r}"


def _describe_resnet(state_dict: Mapping[str, Tensor], prefix: str) -> str:
    blocks = []
    for stage in range(1, 5):
        head = f"{prefix}layer{stage}."
        blocks.append(len({k[len(head) :].split(".")[0] for k in state_dict if k.startswith(head)}))
    bottleneck = f"{prefix}layer1.0.conv3.weight" in state_dict
    depth = sum(blocks) * (3 if bottleneck else 2) + 2
    conv2 = state_dict.get(f"{prefix}layer1.0.conv2.weight")
    if conv2 is None or conv2.dim() != 4:
        return f"ResNet-{depth}"
    width, per_group = int(conv2.shape[0]), int(conv2.shape[1])
    groups = width // max(per_group, 1)
    if groups > 1:
        return f"ResNeXt-{depth} {groups}x{per_group}d"
    if bottleneck and width == 128:
        return f"Wide ResNet-{depth}-2"
    return f"ResNet-{depth}"


def _torchvision_weights(name: str, enum_type: type[WeightsEnum] | None) -> WeightsEnum | None:
    if "." in name:
        try:
            return get_weight(name)
        except (ValueError, KeyError, AttributeError):
            return None
    if enum_type is not None and name in enum_type.__members__:
        return enum_type[name]
    return None
