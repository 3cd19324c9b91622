"""Schemas of the ``loss`` group: partials the engine completes as
``factory(activation=..., num_classes=K, stats=stats)`` (see ``gol.losses``).

``numerics`` is "stable" (default) or "official" (``gol.numerics.Numerics``); ``seed`` seeds the random stream
of the stochastic losses and defaults to the run's ``seed`` in the YAML options. ``images_per_group`` (DropLoss,
Federated) is how many images share the batch statistics and random draws, as on one GPU of the released runs
(4); null pools all images of a process's step.
"""

from __future__ import annotations

from dataclasses import dataclass

from gol.numerics import Numerics

GROUP = "loss"


@dataclass
class CrossEntropyLossConf:
    """Softmax CE (softmax) or binary CE over K + 1 columns with a trained background column (others)."""

    _target_: str = "gol.losses.cross_entropy.CrossEntropyLoss"
    _partial_: bool = True
    background_column: bool = True  # official use_sigmoid / GumbelCE heads train the background channel
    numerics: Numerics = Numerics.stable


@dataclass
class EQLLossConf:
    """EQL over K logits (paper-notes 3.4)."""

    _target_: str = "gol.losses.eql.EQLLoss"
    _partial_: bool = True
    lambda_: float = 0.0011  # official LVIS v1 value (0.00177 on LVIS v0.5)
    numerics: Numerics = Numerics.stable


@dataclass
class EQLv2LossConf:
    """EQLv2 over K + 1 logits: BCE re-weighted by running per-class gradient statistics (Tan et al., CVPR 2021)."""

    _target_: str = "gol.losses.eqlv2.EQLv2Loss"
    _partial_: bool = True
    gamma: float = 12.0  # EQLv2 paper's defaults (LVIS v1): gamma 12, mu 0.8, alpha 4
    mu: float = 0.8
    alpha: float = 4.0
    score_objectness: bool = True  # official test_with_obj: class score times P(object)
    numerics: Numerics = Numerics.stable


@dataclass
class FederatedLossConf:
    """Federated loss over K logits (paper-notes 3.6)."""

    _target_: str = "gol.losses.federated.FederatedLoss"
    _partial_: bool = True
    num_sampled_classes: int = 50  # CenterNet2 FED_LOSS_NUM_CAT
    frequency_power: float = 0.5  # CenterNet2 FED_LOSS_FREQ_WEIGHT: weight = image_count ** 0.5
    seed: int = 0
    numerics: Numerics = Numerics.stable
    images_per_group: int | None = 4  # images per GPU in every released config: S is drawn per GPU


@dataclass
class DropLossConf:
    """DropLoss over K logits (paper-notes 3.5); with the Gumbel activation this is GOL."""

    _target_: str = "gol.losses.droploss.DropLoss"
    _partial_: bool = True
    lambda_: float = 0.0011  # GOL's LVIS v1 value (0.00177 on LVIS v0.5 and in the original DropLoss configs)
    seed: int = 0
    numerics: Numerics = Numerics.stable
    images_per_group: int | None = 4  # images per GPU in every released config: r and the drops are per GPU


@dataclass
class SeesawLossConf:
    """Seesaw loss over K + 2 logits (paper-notes 3.7)."""

    _target_: str = "gol.losses.seesaw.SeesawLoss"
    _partial_: bool = True
    p: float = 0.8
    q: float = 2.0
    eps: float = 0.01
    numerics: Numerics = Numerics.stable  # official: mmdet's pow-then-log weights (equal up to rounding)


SCHEMAS = {
    "ce_schema": CrossEntropyLossConf,
    "eql_schema": EQLLossConf,
    "eqlv2_schema": EQLv2LossConf,
    "federated_schema": FederatedLossConf,
    "droploss_schema": DropLossConf,
    "seesaw_schema": SeesawLossConf,
}
