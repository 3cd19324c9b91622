"""Schemas of the ``calibration`` group: test-time rescoring of the classifier's logits (never the training loss).

``none`` scores with the activation alone. ``fracal`` is a partial the engine completes as ``factory(stats=...)``
with the training split's ``gol.data.fractal.FracalStats``, computed once per run and saved beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

GROUP = "calibration"


@dataclass
class NoCalibrationConf:
    """The activation's own test scores."""


@dataclass
class FracalConf:
    """FRACAL (Alexandridis et al., CVPR 2025); defaults from its LVIS configs (``variant='base10'``, ``fractal_l=2``)
    and its ``calculate_fractality.py`` (``--dims 64``, classes under 4 instances get dimension 1)."""

    _target_: str = "gol.activations.calibration.Fracal"
    _partial_: bool = True
    prior: str = "base10"  # frequency prior -log10(K f_k), f_k the fraction of training images holding class k
    fractal_power: float = 2.0  # l: scores divided by D_k^l (softmax); 0 leaves the fractal dimension out
    grid: int = 64  # box counting over the 1x1 .. grid x grid grids
    min_instances: int = 4  # fewer instances: dimension 1


SCHEMAS = {"no_calibration_schema": NoCalibrationConf, "fracal_schema": FracalConf}
OPTIONS = {"none": NoCalibrationConf, "fracal": FracalConf}  # conf/calibration/<option>.yaml extends its schema


def option_of(node: Any) -> str:
    """The option (``none``, ``fracal``) a composed calibration node was made from; ``none`` for a missing node."""
    target = None if node is None else node.get("_target_")
    if target is None:
        return "none"
    for name, schema in OPTIONS.items():
        if getattr(schema, "_target_", None) == target:
            return name
    raise ValueError(f"calibration._target_={target!r} is no calibration option; choose one of: {', '.join(OPTIONS)}")


def calibration_config(name: str, overrides: list[str], *, base: Any = None) -> DictConfig:
    """The ``calibration`` node of option ``name`` (conf/calibration/NAME.yaml), over ``base`` (a run's node) with
    ``KEY=VALUE`` overrides, typed by its schema as Hydra composes it; ValueError (one line) for an unknown option or
    key, or a mistyped value."""
    from gol.config import CONF_DIR

    if name not in OPTIONS:
        raise ValueError(f"unknown calibration option {name!r}; choose one of: {', '.join(OPTIONS)}")
    content = OmegaConf.load(Path(CONF_DIR) / GROUP / f"{name}.yaml")
    assert isinstance(content, DictConfig)
    content.pop("defaults", None)
    try:
        node = OmegaConf.merge(
            OmegaConf.structured(OPTIONS[name]), content, base or {}, OmegaConf.from_dotlist(list(overrides))
        )
    except OmegaConfBaseException as error:
        reason = str(error).strip().splitlines()[0]
        shown = " ".join(f"calibration.{o}" for o in overrides)
        raise ValueError(f"calibration={name} {shown}: {reason}") from None
    assert isinstance(node, DictConfig)
    return node
