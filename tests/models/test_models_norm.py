"""``backbone_norm: frozen_stats`` (mmdet's BN with ``norm_eval=True``): frozen statistics, trainable affine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import resnet50
from torchvision.ops import FrozenBatchNorm2d

from gol.activations import Softmax
from gol.config.detector import BackboneNorm
from gol.losses import CrossEntropyLoss
from gol.models import build_maskrcnn_r50_fpn
from gol.models.norm import FrozenStatsBatchNorm2d
from gol.models.resnet_fpn import R50, pretrained_fpn_backbone

K = 5
SIZES = {"train_sizes": (64,), "test_size": 64, "max_size": 100}


def _randomised(layer: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    c = layer.running_mean.numel()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(c, generator=g))
        layer.bias.copy_(torch.randn(c, generator=g))
        layer.running_mean.copy_(torch.randn(c, generator=g))
        layer.running_var.copy_(torch.rand(c, generator=g) + 0.1)
    return layer


def test_equals_frozen_batchnorm_at_init_and_eval_mode_batchnorm_in_training() -> None:
    x = torch.randn(2, 4, 5, 6)
    ours = FrozenStatsBatchNorm2d(4)
    torch.testing.assert_close(ours.train()(x), FrozenBatchNorm2d(4)(x), rtol=0, atol=0)

    _randomised(ours)
    frozen = FrozenBatchNorm2d(4)
    frozen.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(x), frozen(x), rtol=0, atol=0)
    # mmdet: nn.BatchNorm2d kept in eval mode while training, affine trainable.
    reference = nn.BatchNorm2d(4).eval()
    reference.load_state_dict({**ours.state_dict(), "num_batches_tracked": torch.tensor(0)})
    torch.testing.assert_close(ours(x), reference(x))
    ours(x).square().sum().backward()
    reference(x).square().sum().backward()
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad)
    torch.testing.assert_close(ours.bias.grad, reference.bias.grad)


def test_running_statistics_never_change_in_training_mode() -> None:
    layer = _randomised(FrozenStatsBatchNorm2d(3)).train()
    before = {k: v.clone() for k, v in layer.named_buffers()}
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        layer(torch.randn(4, 3, 8, 8) * 5 + 2).sum().backward()
        optimizer.step()
    assert {name for name, _ in layer.named_parameters()} == {"weight", "bias"}
    assert set(before) == {"running_mean", "running_var"}
    for name, value in layer.named_buffers():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    assert not torch.equal(layer.weight, _randomised(FrozenStatsBatchNorm2d(3)).weight)  # the affine trained


def test_imagenet_weights_load_and_only_the_trainable_stages_train(tmp_path: Path) -> None:
    torch.manual_seed(0)
    imagenet = resnet50(weights=None).state_dict()  # BatchNorm layout, with num_batches_tracked
    with torch.no_grad():
        imagenet["layer2.0.bn1.running_var"].uniform_(0.5, 2.0)  # not the constructor's values
    path = tmp_path / "resnet50.pth"
    torch.save(imagenet, path)
    backbone, _ = pretrained_fpn_backbone(
        R50, label="R50", detector_enum=None, weights=None, weights_backbone=str(path), allow_download=False,
        trainable_backbone_layers=None, backbone_norm="frozen_stats",
    )  # fmt: skip
    body = backbone.body
    norms = [m for m in body.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]
    assert norms and all(type(m) is FrozenStatsBatchNorm2d for m in norms)
    for name, tensor in body.state_dict().items():
        torch.testing.assert_close(tensor, imagenet[name], msg=name)
    # mmdet frozen_stages=1 = torchvision's 3 trainable stages: stem and layer1 frozen, affine included.
    for name, parameter in body.named_parameters():
        frozen = name.startswith(("conv1", "bn1", "layer1"))
        assert parameter.requires_grad is not frozen, name
    assert isinstance(body.layer2[0].bn1.weight, nn.Parameter) and body.layer2[0].bn1.weight.requires_grad
    assert not body.bn1.weight.requires_grad and not body.layer1[0].bn2.bias.requires_grad


def test_torchvision_norm_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(resnet50(weights=None).state_dict(), path)
    model = build_maskrcnn_r50_fpn(
        num_classes=K, cls_loss=CrossEntropyLoss(activation=Softmax(), num_classes=K), **SIZES,
        weights_backbone=str(path), backbone_norm="torchvision",
    )  # fmt: skip
    norms = [m for m in model.backbone.body.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]
    assert all(type(m) is FrozenBatchNorm2d for m in norms)
    assert not any("bn" in name for name, _ in model.backbone.body.named_parameters())


def test_bad_norm_fails_in_one_line() -> None:
    with pytest.raises(ValueError, match="detector.backbone_norm must be one of 'torchvision', 'frozen_stats'"):
        BackboneNorm("frozen")
