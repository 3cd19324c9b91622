"""NormedLinear / NormedConv2d: bounded by the temperature, invariant to input scale, bias kept, smooth."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call

from gol.models import NormedConv2d, NormedLinear

seeds = st.integers(min_value=0, max_value=2**31 - 1)
temperatures = st.floats(min_value=0.5, max_value=50.0)
scales = st.floats(min_value=1e-2, max_value=1e2)


def _features(seed: int, *shape: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * 10


@settings(max_examples=30, deadline=None)
@given(seed=seeds, temperature=temperatures, scale=scales)
def test_normed_linear_is_bounded_and_scale_invariant(seed: int, temperature: float, scale: float) -> None:
    torch.manual_seed(seed)
    layer = NormedLinear(16, 7, temperature=temperature, bias=False).double()
    x = _features(seed, 9, 16)
    y = layer(x)
    assert y.abs().max() <= temperature * (1 + 1e-9)
    torch.testing.assert_close(layer(x * scale), y, rtol=1e-4, atol=1e-4 * temperature)  # up to NORM_EPS


@settings(max_examples=30, deadline=None)
@given(seed=seeds, temperature=temperatures, scale=scales)
def test_normed_conv_is_bounded_and_scale_invariant(seed: int, temperature: float, scale: float) -> None:
    torch.manual_seed(seed)
    layer = NormedConv2d(8, 4, 1, temperature=temperature, bias=False).double()
    x = _features(seed, 2, 8, 5, 5)
    y = layer(x)
    assert y.shape == (2, 4, 5, 5)
    assert y.abs().max() <= temperature * (1 + 1e-9)
    torch.testing.assert_close(layer(x * scale), y, rtol=1e-4, atol=1e-4 * temperature)  # up to NORM_EPS


def test_normed_linear_reaches_the_temperature_for_aligned_input_and_keeps_its_bias() -> None:
    torch.manual_seed(0)
    layer = NormedLinear(4, 3, temperature=5.0).double()
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([-2.0, 0.0, 1.0]))
    x = layer.weight[1:2].detach() * 3  # parallel to unit 1's weight
    y = layer(x)[0]
    torch.testing.assert_close(y[1], torch.tensor(5.0, dtype=torch.float64), rtol=1e-5, atol=1e-5)
    no_bias = torch.nn.functional.linear(
        x / x.norm(dim=1, keepdim=True) * 5, layer.weight / layer.weight.norm(dim=1, keepdim=True)
    )[0]
    torch.testing.assert_close(y, no_bias + layer.bias, rtol=1e-4, atol=1e-4)  # up to NORM_EPS


def test_normed_conv_keeps_its_bias() -> None:
    torch.manual_seed(0)
    with_bias = NormedConv2d(8, 4, 1, temperature=20.0).double()
    without = NormedConv2d(8, 4, 1, temperature=20.0, bias=False).double()
    without.weight.data.copy_(with_bias.weight.data)
    x = _features(0, 2, 8, 3, 3)
    torch.testing.assert_close(with_bias(x), without(x) + with_bias.bias.view(1, -1, 1, 1))


def test_normed_layers_gradcheck() -> None:
    """Gradients with respect to the input, the weight and the bias, in float64."""
    torch.manual_seed(0)
    for layer, x in (
        (NormedLinear(6, 3, temperature=5.0).double(), torch.randn(5, 6, dtype=torch.float64)),
        (NormedConv2d(4, 3, 1, temperature=20.0).double(), torch.randn(2, 4, 3, 3, dtype=torch.float64)),
    ):
        weight = layer.weight.detach().clone().requires_grad_()
        bias = layer.bias.detach().clone().requires_grad_()

        def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, layer=layer) -> torch.Tensor:
            return functional_call(layer, {"weight": weight, "bias": bias}, (x,))

        assert torch.autograd.gradcheck(forward, (x.requires_grad_(), weight, bias))


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_non_positive_temperature_is_rejected(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        NormedLinear(4, 2, temperature=temperature)
    with pytest.raises(ValueError, match="temperature"):
        NormedConv2d(4, 2, 1, temperature=temperature)
