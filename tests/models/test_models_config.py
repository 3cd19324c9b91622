"""conf/detector: every option composes against its schema and instantiates the right builder."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

import gol.models
from gol.activations import Gumbel
from gol.config import detector as detector_config
from gol.losses import CrossEntropyLoss

CONF = Path(__file__).resolve().parents[2] / "conf"
OPTIONS = sorted(p.stem for p in (CONF / "detector").glob("*.yaml"))
K = 4


@pytest.fixture(autouse=True, scope="module")
def _schemas() -> None:
    for name, node in detector_config.SCHEMAS.items():
        ConfigStore.instance().store(name=name, node=node)


def _compose(option: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        # the ResNet options name their ImageNet file under ${paths.weights_root}
        return compose(overrides=[f"+detector={option}", "+paths.weights_root=/weights", *overrides]).detector


def test_every_builder_has_an_option() -> None:
    assert OPTIONS == [
        "cascade_r101_fpn",
        "htc_r101_fpn",
        "maskrcnn_r101_fpn",
        "maskrcnn_r50_fpn",
        "maskrcnn_r50_fpn_v2",
        "maskrcnn_x101_fpn",
        "tiny",
    ]


@pytest.mark.parametrize("option", OPTIONS)
def test_option_composes_to_a_partial_of_its_builder(option: str) -> None:
    cfg = _compose(option, "detector.box_nms_thresh=0.3")
    factory = instantiate(cfg)
    assert isinstance(factory, functools.partial)
    assert factory.func is getattr(gol.models, "build_" + option)
    assert factory.keywords["box_nms_thresh"] == 0.3
    assert factory.keywords["weights"] is None
    schema = OmegaConf.structured(detector_config.SCHEMAS[f"{option}_schema"])
    assert set(cfg) == set(schema)
    accepted = set(inspect.signature(factory.func).parameters)
    engine_given = {"num_classes", "cls_loss", "train_sizes", "test_size", "max_size"}
    assert set(factory.keywords) | engine_given == accepted


def test_tiny_option_builds_the_model() -> None:
    factory = instantiate(_compose("tiny", "detector.normed_mask=true"))
    model = factory(
        num_classes=K,
        cls_loss=CrossEntropyLoss(activation=Gumbel(), num_classes=K),
        train_sizes=[96, 112, 128],
        test_size=128,
        max_size=160,
    )
    assert model.roi_heads.nms_thresh == 0.5 and model.roi_heads.detections_per_img == 50
    assert isinstance(model.roi_heads.mask_predictor.mask_fcn_logits, gol.models.NormedConv2d)


def test_misspelt_key_fails_at_compose_time() -> None:
    with pytest.raises(ConfigCompositionException):
        _compose("maskrcnn_r50_fpn", "detector.box_nms_threshold=0.3")
