"""FRACAL: training-free calibration of the test-time scores from class frequency and fractal dimension.

Shape shorthand:
    R: RoIs (rows of the classifier output).
    K: foreground categories; label k in 1..K, label 0 is background (torchvision convention).
    C: width of a logit tensor (K + 1 with a background column at index 0, or K without one).

Alexandridis et al., "Fractal Calibration for long-tailed object detection", CVPR 2025 (code kostas1515/FRACAL,
``ConvFCFracalBBoxHead._predict_by_feat_single``). With f_k the fraction of training images holding class k and
D_k its box centres' fractal dimension (``gol.data.fractal``), two per-class offsets are added to the logits:

    frequency prior   w_k = -log_b(K f_k)                     (b = 10, the reference's ``base10`` variant)
    fractal prior     s_k = -log10(K D_k^l / sum_j D_j^l)     (binary scores only; l = ``fractal_power``)

Scores of a softmax (over the K + 1 logits, background's offset 0) divide each class's probability by D_k^l and
renormalise, which is softmax(q + w - l ln D); scores of a binary activation are p(q) p(q + w + s), the raw
probability times the calibrated one. Rare classes (small f) and classes that gather in few places (small D) are
raised against frequent and uniformly spread ones. It changes test-time scores only, never the training loss.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from gol.activations.base import Activation
from gol.activations.functions import upcast_logits
from gol.data.fractal import FracalStats, check_box_counting

__all__ = ["PRIORS", "Fracal", "fracal_offsets", "fracal_scores"]

# The frequency prior's logarithm, as the reference's variants name it; "none" leaves the frequency out.
PRIORS: dict[str, float | None] = {"none": None, "raw": math.e, "base2": 2.0, "base10": 10.0}


def fracal_offsets(
    image_frequency: Tensor, fractal_dimension: Tensor, *, prior: str, fractal_power: float
) -> tuple[Tensor, Tensor]:
    """(K,) image frequencies and (K,) fractal dimensions -> the (K,) logit offsets of softmax and binary scores.

    Returns ``(softmax_offset, binary_offset)``: w - l ln D and w + s (see the module docstring), float64.
    """
    k = image_frequency.shape[0]
    freq = image_frequency.to(torch.float64)
    dim = fractal_dimension.to(torch.float64)
    base = PRIORS[prior]
    if base is None:
        w = torch.zeros_like(freq)
    else:
        w = -torch.log(k * freq) / math.log(base)  # (K,) -log_b(f) - log_b(K)
    weight = dim.pow(fractal_power)  # (K,) D^l
    s = -torch.log10(weight / weight.sum()) + math.log10(1.0 / k)  # (K,)
    return w - fractal_power * torch.log(dim), w + s


def fracal_scores(
    logits: Tensor,
    *,
    activation: Activation,
    background: bool,
    image_frequency: Tensor,
    fractal_dimension: Tensor,
    prior: str,
    fractal_power: float,
) -> Tensor:
    """(R, C) logits -> (R, K) FRACAL-calibrated foreground scores; column k is label k + 1.

    A softmax activation, or any activation scored by a softmax (``scoring="softmax"``), gets the softmax form over
    its K + 1 logits; a binary activation the product form over its K foreground logits.
    """
    softmax_offset, binary_offset = fracal_offsets(
        image_frequency, fractal_dimension, prior=prior, fractal_power=fractal_power
    )
    logits = upcast_logits(logits)
    if activation.kind == "softmax" or activation.scoring == "softmax":
        if not background:
            raise ValueError("FRACAL's softmax form needs the background column: logits of width K + 1")
        offset = torch.cat([softmax_offset.new_zeros(1), softmax_offset]).to(logits)  # (K + 1,): background 0
        return torch.softmax(logits + offset, dim=-1)[:, 1:]  # (R, K)
    foreground = logits[:, 1:] if background else logits  # (R, K)
    return activation.prob(foreground) * activation.prob(foreground + binary_offset.to(foreground))  # (R, K)


class Fracal(nn.Module):
    """FRACAL's per-class constants (not checkpointed: they come from the run's saved statistics) and its scores.

    Args:
        stats: the training split's ``FracalStats``.
        prior: the frequency prior's logarithm: "base10" (the reference's LVIS setting), "base2", "raw" (natural)
            or "none".
        fractal_power: l, the power of the fractal dimension (the reference's ``fractal_l``); 0 leaves it out.
        grid, min_instances: the box-counting settings ``stats`` must have been computed with.
    """

    # A class without training images would get an infinite prior: it counts as holding one image.
    min_image_count: ClassVar[int] = 1
    image_frequency: Tensor  # (K,) float64 f_k
    fractal_dimension: Tensor  # (K,) float64 D_k

    def __init__(
        self, *, stats: FracalStats, prior: str = "base10", fractal_power: float = 2.0, grid: int, min_instances: int
    ) -> None:
        super().__init__()
        self.check_options(prior=prior, fractal_power=fractal_power, grid=grid, min_instances=min_instances)
        if (stats.grid, stats.min_instances) != (grid, min_instances):
            raise ValueError(
                f"FRACAL statistics were counted with grid={stats.grid}, min_instances={stats.min_instances}, "
                f"not calibration.grid={grid}, calibration.min_instances={min_instances}; recompute them"
            )
        self.prior = prior
        self.fractal_power = float(fractal_power)
        self.grid = grid
        self.min_instances = min_instances
        counts = torch.tensor(stats.image_count, dtype=torch.float64).clamp(min=self.min_image_count)
        self.register_buffer("image_frequency", counts / stats.num_images, persistent=False)  # (K,)
        self.register_buffer(
            "fractal_dimension", torch.tensor(stats.fractal_dimension, dtype=torch.float64), persistent=False
        )  # (K,)

    @staticmethod
    def check_options(*, prior: str, fractal_power: float, grid: int, min_instances: int) -> None:
        """One-line refusal of settings outside their range (also run on the config before anything is built)."""
        if prior not in PRIORS:
            raise ValueError(f"calibration.prior={prior!r} is unknown; use one of {', '.join(PRIORS)}")
        if isinstance(fractal_power, bool) or not isinstance(fractal_power, (int, float)):
            raise ValueError(f"calibration.fractal_power must be a number, got {fractal_power!r}")
        if not (math.isfinite(fractal_power) and fractal_power >= 0):
            raise ValueError(
                f"calibration.fractal_power must be finite and >= 0 (0 leaves the fractal dimension out; FRACAL "
                f"uses 2), got {fractal_power}"
            )
        check_box_counting(grid=grid, min_instances=min_instances)

    @property
    def num_classes(self) -> int:
        return int(self.image_frequency.shape[0])

    def scores(self, logits: Tensor, *, activation: Activation, background: bool) -> Tensor:
        """(R, C) logits -> (R, K) calibrated scores (``fracal_scores``)."""
        return fracal_scores(
            logits, activation=activation, background=background, image_frequency=self.image_frequency,
            fractal_dimension=self.fractal_dimension, prior=self.prior, fractal_power=self.fractal_power,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"K={self.num_classes}, prior={self.prior!r}, fractal_power={self.fractal_power}, grid={self.grid}"
