"""The activation and loss config groups compose against their schemas and instantiate the right modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from gol.activations import ACTIVATIONS, Activation
from gol.losses import LOSSES, ClassificationLoss, DropLoss, Numerics, check_pair
from tests_support import compose_train

CONF = str(Path(__file__).resolve().parents[2] / "conf")
K = 5


@pytest.fixture
def _compose(tmp_path):
    def compose(overrides: list[str]):
        return compose_train(["seed=11", *overrides], tmp_path)

    return compose


def test_every_option_has_a_yaml() -> None:
    """Every registered activation and every loss option is a choosable YAML option, and nothing else is."""
    assert sorted(p.stem for p in Path(CONF, "activation").glob("*.yaml")) == sorted(ACTIVATIONS)
    assert sorted(p.stem for p in Path(CONF, "loss").glob("*.yaml")) == sorted(LOSSES)


@pytest.mark.parametrize(
    ("loss", "act"),
    [
        ("ce", "softmax"),
        ("ce", "sigmoid"),
        ("ce", "probit"),
        ("eql", "sigmoid"),
        ("eqlv2", "gumbel"),
        ("federated", "gumbel"),
        ("droploss", "probit"),
        ("droploss", "gumbel"),
        ("seesaw", "softmax"),
    ],
)
def test_compose_and_instantiate(_compose, make_stats, loss: str, act: str) -> None:
    cfg = _compose([f"activation={act}", f"loss={loss}"])
    check_pair(act, loss)
    activation = instantiate(cfg.activation)
    assert isinstance(activation, Activation) and activation.name == act
    module = instantiate(cfg.loss)(activation=activation, num_classes=K, stats=make_stats([1, 20, 300, 4, 50]))
    assert isinstance(module, ClassificationLoss)
    if hasattr(module, "seed"):
        assert module.seed == 11  # follows the run's seed
    logits = torch.randn(6, module.num_logits)
    assert torch.isfinite(module(logits, torch.tensor([0, 1, 2, 3, 4, 5])))


def test_gol_recipe_is_droploss_with_official_defaults(_compose, make_stats) -> None:
    cfg = _compose(["recipe=gol"])
    assert cfg.loss.lambda_ == 0.0011 and cfg.loss.numerics == Numerics.stable
    module = instantiate(cfg.loss)(activation=instantiate(cfg.activation), num_classes=K, stats=make_stats([1] * K))
    assert type(module) is DropLoss
    assert module.activation.init_bias == -2.0 and module.activation.init_weight == 0.001
    # The rest of the official recipe (paper-notes 3.5) comes with the same choice.
    assert cfg.detector.box_nms_thresh == 0.3 and cfg.detector.normed_mask
    assert cfg.sampler.threshold == 0.001 and cfg.sampler.rounding == "ceil"
    assert cfg.schedule.epochs == 24 and list(cfg.schedule.steps) == [16, 22]


def test_overrides_are_typed(_compose) -> None:
    cfg = _compose(["activation=gumbel", "loss=eql", "loss.numerics=official", "loss.lambda_=0.00177"])
    assert cfg.loss.numerics == Numerics.official and cfg.loss.lambda_ == 0.00177
    with pytest.raises(ConfigCompositionException):
        _compose(["activation=gumbel", "loss=eql", "loss.lamda=0.1"])  # misspelt key
    with pytest.raises(ConfigCompositionException):
        _compose(["activation=gumbel", "loss=eql", "loss.numerics=exact"])
    with pytest.raises(ConfigCompositionException):
        _compose(["activation=softmax", "loss=seesaw", "loss.numerics=exact"])  # Seesaw's numerics are typed too
