"""The losses run where the logits are: CUDA results match CPU, random streams reproduce and restore there."""

from __future__ import annotations

import pytest
import torch

from gol.activations import get_activation
from gol.activations.gumbel_fused import gumbel_binary_cross_entropy_sum
from gol.losses import LOSSES, VALID_PAIRS, DropLoss, FederatedLoss

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

K = 6
COUNTS = [1, 3, 200, 50, 999, 2]
PAIRS = [(loss, act) for loss, acts in VALID_PAIRS.items() for act in acts]


@pytest.mark.parametrize(("loss", "act"), PAIRS)
def test_cuda_matches_cpu(make_stats, make_batch, loss: str, act: str) -> None:
    stats = make_stats(COUNTS, 10_000)
    cpu = LOSSES[loss](activation=get_activation(act), num_classes=K, stats=stats)
    gpu = LOSSES[loss](activation=get_activation(act), num_classes=K, stats=stats).cuda()
    logits, labels = make_batch(64, K, width=cpu.num_logits, seed=1)
    x_gpu = logits.cuda().requires_grad_(True)
    value = gpu(x_gpu, labels.cuda())
    value.backward()
    assert value.device.type == "cuda" and torch.isfinite(value) and torch.isfinite(x_gpu.grad).all()
    assert gpu.scores(x_gpu.detach()).device.type == "cuda"
    if not isinstance(cpu, (DropLoss, FederatedLoss)):  # deterministic losses: same numbers on both devices
        x_cpu = logits.clone().requires_grad_(True)
        value_cpu = cpu(x_cpu, labels)  # once: EQLv2 and Seesaw update their statistics at each call
        value_cpu.backward()
        torch.testing.assert_close(value.cpu(), value_cpu, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(x_gpu.grad.cpu(), x_cpu.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cls", [DropLoss, FederatedLoss])
def test_cuda_streams_reproduce_and_restore(make_stats, make_batch, cls) -> None:
    stats = make_stats(COUNTS, 10_000)
    logits, labels = make_batch(64, K, seed=2)
    logits, labels = logits.cuda(), labels.cuda()
    first = cls(activation=get_activation("gumbel"), num_classes=K, stats=stats, seed=5).cuda()
    again = cls(activation=get_activation("gumbel"), num_classes=K, stats=stats, seed=5).cuda()
    assert torch.equal(first(logits, labels), again(logits, labels))
    state = first.state_dict()
    expected = first(logits, labels)
    restored = cls(activation=get_activation("gumbel"), num_classes=K, stats=stats).cuda()
    restored.load_state_dict(state)
    assert torch.equal(restored(logits, labels), expected)


def test_fused_kernel_cuda_matches_cpu() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(300, 1203, generator=g) * 4 - 2
    positive = torch.randint(-1, 1203, (300,), generator=g)
    drop = torch.rand(300, 1203, generator=g) < 0.4
    x_cpu, x_gpu = logits.clone().requires_grad_(True), logits.cuda().requires_grad_(True)
    cpu = gumbel_binary_cross_entropy_sum(x_cpu, positive, drop=drop)
    gpu = gumbel_binary_cross_entropy_sum(x_gpu, positive.cuda(), drop=drop.cuda())
    cpu.backward()
    gpu.backward()
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(x_gpu.grad.cpu(), x_cpu.grad, rtol=1e-5, atol=1e-30)
