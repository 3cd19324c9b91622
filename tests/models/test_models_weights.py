"""Initial weights from local files: round trips, COCO-style class-layer skipping, and the one-line errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torchvision.models import ResNet50_Weights, resnet18, resnet50
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.ops import FrozenBatchNorm2d

from gol.activations import AGLU, Gumbel, Softmax
from gol.losses import CrossEntropyLoss
from gol.models import (
    WeightsMismatchError,
    WeightsNotFoundError,
    build_maskrcnn_r50_fpn,
    build_maskrcnn_r101_fpn,
    build_tiny,
)
from gol.models.weights import is_class_dependent, resolve_weights

K = 5
SIZES = {"train_sizes": (64,), "test_size": 64, "max_size": 100}


def _loss(num_classes: int = K) -> CrossEntropyLoss:
    return CrossEntropyLoss(activation=Softmax(), num_classes=num_classes)


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(state, path)
    return path


@pytest.mark.parametrize("wrapped", [False, True], ids=["state_dict", "checkpoint"])
def test_tiny_round_trip(tmp_path: Path, wrapped: bool) -> None:
    torch.manual_seed(0)
    source = build_tiny(num_classes=K, cls_loss=_loss(), **SIZES)
    state = source.state_dict()
    path = _save({"model": state} if wrapped else state, tmp_path / "tiny.pt")
    torch.manual_seed(1)
    loaded = build_tiny(num_classes=K, cls_loss=_loss(), **SIZES, weights=str(path))
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, state[name], msg=name)


def test_class_dependent_layers_are_skipped_and_logged(tmp_path: Path, caplog) -> None:
    torch.manual_seed(0)
    state = build_tiny(num_classes=K, cls_loss=_loss(), **SIZES).state_dict()
    path = _save(state, tmp_path / "tiny_k5.pt")
    with caplog.at_level(logging.INFO, logger="gol.models.weights"):
        model = build_tiny(num_classes=7, cls_loss=_loss(7), **SIZES, weights=str(path))
    new = model.state_dict()
    for name, tensor in state.items():
        if is_class_dependent(name):
            assert new[name].shape != tensor.shape
        else:
            torch.testing.assert_close(new[name], tensor, msg=name)
    assert "roi_heads.box_predictor.cls_score.weight" in caplog.text


def test_torchvision_coco_layout_loads_into_r50(tmp_path: Path) -> None:
    """A torchvision Mask R-CNN R50 file (91 classes, BatchNorm counters) fits our R50 with K=5."""
    torch.manual_seed(0)
    coco_like = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict()
    path = _save(coco_like, tmp_path / "maskrcnn_r50_coco_like.pth")
    model = build_maskrcnn_r50_fpn(num_classes=K, cls_loss=_loss(), **SIZES, weights=str(path))
    state = model.state_dict()
    for name in (
        "backbone.body.layer3.2.conv2.weight",
        "backbone.body.bn1.running_var",
        "rpn.head.conv.0.0.weight",
        "roi_heads.box_head.fc7.weight",
        "roi_heads.mask_head.3.0.weight",
    ):
        torch.testing.assert_close(state[name], coco_like[name])
    assert state["roi_heads.box_predictor.cls_score.weight"].shape == (K + 1, 1024)
    # Pretrained: frozen BatchNorm, conv1 and layer1 frozen (torchvision's 3 trainable stages).
    assert isinstance(model.backbone.body.bn1, FrozenBatchNorm2d)
    assert not model.backbone.body.layer1[0].conv1.weight.requires_grad
    assert model.backbone.body.layer2[0].conv1.weight.requires_grad


def test_imagenet_backbone_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    imagenet = resnet50(weights=None).state_dict()
    path = _save(imagenet, tmp_path / "resnet50.pth")
    model = build_maskrcnn_r50_fpn(
        num_classes=K, cls_loss=_loss(), **SIZES, weights_backbone=str(path), trainable_backbone_layers=2
    )
    body = model.backbone.body.state_dict()
    for name, tensor in body.items():
        torch.testing.assert_close(tensor, imagenet[name], msg=name)
    assert not model.backbone.body.layer2[0].conv1.weight.requires_grad
    assert model.backbone.body.layer3[0].conv1.weight.requires_grad


def test_missing_files_name_the_path_and_the_config_key(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "weights.pth"
    with pytest.raises(WeightsNotFoundError, match="detector.weights: weights file not found") as error:
        build_tiny(num_classes=K, cls_loss=_loss(), **SIZES, weights=str(missing))
    assert str(missing) in str(error.value) and "\n" not in str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    with pytest.raises(WeightsNotFoundError, match="detector.weights_backbone") as error:
        build_maskrcnn_r50_fpn(num_classes=K, cls_loss=_loss(), **SIZES, weights_backbone=str(missing))
    assert str(missing) in str(error.value)
    # A torchvision name is only a name when downloads are allowed.
    with pytest.raises(WeightsNotFoundError, match="allow_download=true"):
        build_maskrcnn_r50_fpn(num_classes=K, cls_loss=_loss(), **SIZES, weights_backbone="IMAGENET1K_V1")


def test_torchvision_names_resolve_only_with_allow_download() -> None:
    resolved = resolve_weights(
        "IMAGENET1K_V1", config_key="detector.weights_backbone", allow_download=True, enum_type=ResNet50_Weights
    )
    assert resolved is ResNet50_Weights.IMAGENET1K_V1
    full = resolve_weights(
        "ResNet50_Weights.IMAGENET1K_V2", config_key="detector.weights_backbone", allow_download=True, enum_type=None
    )
    assert full is ResNet50_Weights.IMAGENET1K_V2
    with pytest.raises(WeightsNotFoundError, match="neither a file nor a torchvision weights name"):
        resolve_weights("NO_SUCH", config_key="detector.weights", allow_download=True, enum_type=ResNet50_Weights)


def test_r50_detector_weights_into_the_r101_builder_are_rejected(tmp_path: Path) -> None:
    torch.manual_seed(0)
    r50 = build_maskrcnn_r50_fpn(num_classes=K, cls_loss=_loss(), **SIZES).state_dict()
    path = _save(r50, tmp_path / "r50.pth")
    with pytest.raises(WeightsMismatchError) as error:
        build_maskrcnn_r101_fpn(num_classes=K, cls_loss=_loss(), **SIZES, weights=str(path))
    message = str(error.value)
    assert "Mask R-CNN ResNet-101 FPN" in message and "looks like a Mask R-CNN ResNet-50 FPN detector" in message
    assert "detector.weights" in message and "\n" not in message


def test_wrong_backbone_files_are_rejected(tmp_path: Path) -> None:
    path = _save(resnet18(weights=None).state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(WeightsMismatchError, match="looks like an ImageNet ResNet-18 classifier"):
        build_maskrcnn_r50_fpn(num_classes=K, cls_loss=_loss(), **SIZES, weights_backbone=str(path))
    tiny = _save(build_tiny(num_classes=K, cls_loss=_loss(), **SIZES).state_dict(), tmp_path / "tiny.pt")
    with pytest.raises(WeightsMismatchError, match="set detector.weights instead|tiny detector"):
        build_maskrcnn_r50_fpn(num_classes=K, cls_loss=_loss(), **SIZES, weights_backbone=str(tiny))


def test_loss_state_is_not_taken_from_weights(tmp_path: Path) -> None:
    """Initial weights never carry a classification loss's state, whatever loss the file was trained with."""
    state = build_tiny(num_classes=K, cls_loss=_loss(), **SIZES).state_dict()
    state["roi_heads.cls_loss.some_buffer"] = torch.ones(3)
    path = _save(state, tmp_path / "tiny_with_loss_state.pt")
    model = build_tiny(
        num_classes=K, cls_loss=CrossEntropyLoss(activation=Gumbel(), num_classes=K), **SIZES, weights=str(path)
    )
    assert "roi_heads.cls_loss.some_buffer" not in model.state_dict()


def test_learned_activation_parameters_are_taken_from_weights(tmp_path: Path) -> None:
    """A learnable activation's parameters (AGLU's lambda, kappa) are weights, though registered under the loss."""
    source = build_tiny(num_classes=K, cls_loss=CrossEntropyLoss(activation=AGLU(init_lambda=0.4, init_kappa=0.7),
                                                                 num_classes=K), **SIZES)  # fmt: skip
    path = _save(source.state_dict(), tmp_path / "tiny_aglu.pt")
    activation = AGLU()  # starts at lambda = kappa = 1
    build_tiny(num_classes=K, cls_loss=CrossEntropyLoss(activation=activation, num_classes=K), **SIZES,
               weights=str(path))  # fmt: skip
    assert float(activation.module.lambda_param) == pytest.approx(0.4)
    assert float(activation.module.kappa_param) == pytest.approx(0.7)


def test_unreadable_or_non_state_dict_files_are_rejected(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a torch file")
    with pytest.raises(WeightsMismatchError, match="cannot be read as a torch state_dict") as error:
        build_tiny(num_classes=K, cls_loss=_loss(), **SIZES, weights=str(garbage))
    assert "\n" not in str(error.value)
    listing = _save({"model": [1, 2, 3]}, tmp_path / "not_a_state_dict.pt")
    with pytest.raises(WeightsMismatchError, match="does not hold a state_dict"):
        build_tiny(num_classes=K, cls_loss=_loss(), **SIZES, weights=str(listing))
