"""Every option of every config group composes; misspelt keys and unknown options fail at composition."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from gol.train import CONF_DIR
from tests_support import compose_train

GROUPS = ("activation", "loss", "detector", "dataset", "sampler", "schedule", "logger", "paths")
# A loss needs an activation it pairs with (gol.losses.check_pair); softmax goes with ce and seesaw only.
PAIRED_ACTIVATION = {"ce": "softmax", "seesaw": "softmax"}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_resolves(group, option, tmp_path):
    overrides = [f"{group}={option}"]
    if group == "loss":
        overrides.append(f"activation={PAIRED_ACTIVATION.get(option, 'gumbel')}")
    cfg = compose_train(overrides, tmp_path)
    container = OmegaConf.to_container(cfg, resolve=True)
    assert container[group] is not None


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group}/ has no options"


def test_misspelt_key_fails_when_composed(tmp_path):
    with pytest.raises(ConfigCompositionException, match="lamda"):
        compose_train(["loss=eql", "activation=gumbel", "loss.lamda=0.1"], tmp_path)
    with pytest.raises(ConfigCompositionException, match="max_itr"):
        compose_train(["schedule.max_itr=3"], tmp_path)


def test_unknown_option_lists_the_available_ones(tmp_path):
    with pytest.raises(ConfigCompositionException, match="Available options"):
        compose_train(["loss=focal"], tmp_path)
