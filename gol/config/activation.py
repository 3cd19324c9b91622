"""Schemas of the ``activation`` group: one ``gol.activations.Activation`` per option, built with no arguments
beyond the classifier initialisation of the last classification layer and the test-time scoring."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "activation"


@dataclass
class _ActivationCommonConf:
    init: str = "constant"  # "constant": every weight init_weight; "normal": N(0, init_weight^2) (mmdet default)
    # "own": test scores from the activation; "softmax": softmax over the K + 1 logits, as mmdetection 2.x scores
    # a plain CrossEntropyLoss(use_sigmoid=True) head (the paper's Sigmoid rows)
    scoring: str = "own"


@dataclass
class SigmoidConf(_ActivationCommonConf):
    """Logistic sigmoid; init 0.001 / -6.5 as the official ``configs/activations`` (sigma(-6.5) = 1.5e-3)."""

    _target_: str = "gol.activations.Sigmoid"
    init_weight: float = 0.001
    init_bias: float = -6.5


@dataclass
class SoftmaxConf(_ActivationCommonConf):
    """Softmax over K + 1 classes (background at 0); init 0.001 / -6.5 as the official configs."""

    _target_: str = "gol.activations.Softmax"
    init_weight: float = 0.001
    init_bias: float = -6.5


@dataclass
class GumbelConf(_ActivationCommonConf):
    """Gumbel CDF exp(-exp(-q)) (GOL); init 0.001 / -2 as every official Gumbel config (eta(-2) = 6.2e-4)."""

    _target_: str = "gol.activations.Gumbel"
    init_weight: float = 0.001
    init_bias: float = -2.0


@dataclass
class ProbitConf(_ActivationCommonConf):
    """Normal CDF; bias -3.45 from the authors' probit config (Phi(-3.45) = 2.8e-4), weight 0.001 as the others."""

    _target_: str = "gol.activations.Probit"
    init_weight: float = 0.001
    init_bias: float = -3.45


@dataclass
class AGLUConf(_ActivationCommonConf):
    """Learnable APA (Alexandridis et al., ECCV 2024): (1 + lambda e^{-kappa q})^{-1/lambda}, lambda and kappa trained
    with the classifier. Starts as the sigmoid (lambda = kappa = 1), so its init is the sigmoid's 0.001 / -6.5."""

    _target_: str = "gol.activations.AGLU"
    init_weight: float = 0.001
    init_bias: float = -6.5
    init_lambda: float = 1.0  # > 0; 1: sigmoid, -> 0: Gumbel
    init_kappa: float = 1.0  # > 0: the slope in the logit
    lambda_min: float = 1e-4  # lambda's lower clamp, as the official module (torch.clamp(lambda_param, min=0.0001))


SCHEMAS = {
    "sigmoid_schema": SigmoidConf,
    "softmax_schema": SoftmaxConf,
    "gumbel_schema": GumbelConf,
    "probit_schema": ProbitConf,
    "aglu_schema": AGLUConf,
}
