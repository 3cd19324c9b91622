"""Schemas of the ``activation`` group: one ``gol.activations.Activation`` per option, built with no arguments
beyond the classifier initialisation (constant weight and bias of the last classification layer)."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "activation"


@dataclass
class SigmoidConf:
    """Logistic sigmoid; init 0.001 / -6.5 as the official ``configs/activations`` (sigma(-6.5) = 1.5e-3)."""

    _target_: str = "gol.activations.Sigmoid"
    init_weight: float = 0.001
    init_bias: float = -6.5


@dataclass
class SoftmaxConf:
    """Softmax over K + 1 classes (background at 0); init 0.001 / -6.5 as the official configs."""

    _target_: str = "gol.activations.Softmax"
    init_weight: float = 0.001
    init_bias: float = -6.5


@dataclass
class GumbelConf:
    """Gumbel CDF exp(-exp(-q)) (GOL); init 0.001 / -2 as every official Gumbel config (eta(-2) = 6.2e-4)."""

    _target_: str = "gol.activations.Gumbel"
    init_weight: float = 0.001
    init_bias: float = -2.0


@dataclass
class ProbitConf:
    """Normal CDF; bias -3.45 from the authors' probit config (Phi(-3.45) = 2.8e-4), weight 0.001 as the others."""

    _target_: str = "gol.activations.Probit"
    init_weight: float = 0.001
    init_bias: float = -3.45


SCHEMAS = {
    "sigmoid_schema": SigmoidConf,
    "softmax_schema": SoftmaxConf,
    "gumbel_schema": GumbelConf,
    "probit_schema": ProbitConf,
}
