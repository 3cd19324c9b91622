"""Cosine-similarity (normalised) layers used by the GOL heads.

Shape shorthand: R = RoIs, D = feature width, C = output units (classifier logits or mask classes),
H x W = spatial size of a mask RoI feature map.

Both layers L2-normalise each output unit's weight vector and the input feature vector, take their dot product
(a cosine in [-1, 1]), multiply it by a fixed temperature and add the ordinary bias. This follows the official
GOL configs (paper-notes section 2): the mask predictor is ``NormedConv2d`` with temperature 20, and the
``eql_normed_mask_classifier`` runs use ``NormedLinear`` with temperature 5 for the box classifier.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

# Added to every L2 norm so that an all-zero feature (a ReLU output can be one) maps to zero, not NaN.
NORM_EPS = 1e-6


def l2_normalise(x: Tensor, dim: int) -> Tensor:
    return x / (x.norm(dim=dim, keepdim=True) + NORM_EPS)


class NormedLinear(nn.Linear):
    """``temperature * cos(x, w_c) + b_c`` for every output unit c.

    Input (R, D) -> output (R, C). The bias is kept (the official classifier adds it after the scaling), so with
    ``bias=False`` every output lies in [-temperature, temperature]. The output does not change when the input is
    multiplied by a positive number.
    """

    def __init__(self, in_features: int, out_features: int, *, temperature: float, bias: bool = True) -> None:
        if temperature <= 0:
            raise ValueError(f"NormedLinear temperature must be positive, got {temperature}")
        super().__init__(in_features, out_features, bias=bias)
        self.temperature = float(temperature)

    def forward(self, x: Tensor) -> Tensor:
        weight = l2_normalise(self.weight, dim=1)  # (C, D)
        features = l2_normalise(x, dim=1) * self.temperature  # (R, D)
        return F.linear(features, weight, self.bias)  # (R, C)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, temperature={self.temperature}"


class NormedConv2d(nn.Conv2d):
    """Convolution of the channel-normalised input with per-filter normalised weights, times a temperature.

    Input (R, D, H, W) -> output (R, C, H', W'). Each filter is normalised over its input channels (per kernel
    position), and the input over channels at each pixel; for the 1x1 mask-logit convolution this is exactly
    ``temperature * cos(x[:, :, i, j], w_c) + b_c``. The bias is kept.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        temperature: float,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"NormedConv2d temperature must be positive, got {temperature}")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self.temperature = float(temperature)

    def forward(self, x: Tensor) -> Tensor:
        weight = l2_normalise(self.weight, dim=1)  # (C, D, kh, kw)
        features = l2_normalise(x, dim=1) * self.temperature  # (R, D, H, W)
        return self._conv_forward(features, weight, self.bias)  # (R, C, H', W')

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, temperature={self.temperature}"
