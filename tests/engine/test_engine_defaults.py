"""Each default is written once: the schema (gol/config/) holds it, an option YAML sets only what differs from it,
and the schema agrees with what it builds (the builder's signature, the loss's constructor, the activation's own
initialisation). A value changed in one layer and not the others fails here."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from hydra.utils import get_object
from omegaconf import OmegaConf

from gol.activations import Activation
from gol.config import _GROUP_MODULES, CONF_DIR
from gol.models.assemble import DetectorOptions
from gol.models.builders import build_maskrcnn_r50_fpn

SCHEMAS: dict[str, type] = {
    name: schema
    for module in _GROUP_MODULES
    for name, schema in importlib.import_module(f"gol.config.{module}").SCHEMAS.items()
}
BUILT = sorted(name for name, schema in SCHEMAS.items() if "_target_" in {f.name for f in dataclasses.fields(schema)})


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _plain(x: Any) -> Any:
    if isinstance(x, Enum):
        return x.value
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _same(a: Any, b: Any) -> bool:
    return bool(_plain(a) == _plain(b))


def _option_files() -> list[tuple[Path, str]]:
    """Every option YAML that extends a schema, with the schema's name."""
    found = []
    for path in sorted(Path(CONF_DIR).glob("*/*.yaml")):
        for entry in OmegaConf.to_container(OmegaConf.load(path)).get("defaults", []):  # type: ignore[union-attr]
            if isinstance(entry, str) and entry.startswith("/") and entry.endswith("_schema@_here_"):
                found.append((path, entry[1:].split("@")[0]))
    return found


@pytest.mark.parametrize(("path", "schema"), _option_files(), ids=lambda x: str(x).rsplit("conf/", 1)[-1])
def test_an_option_yaml_sets_only_what_differs_from_its_schema(path: Path, schema: str) -> None:
    values = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    assert isinstance(values, dict)
    defaults = {f.name: _default(f) for f in dataclasses.fields(SCHEMAS[schema])}
    restated = [key for key, value in values.items() if key in defaults and _same(value, defaults[key])]
    assert not restated, f"{path.name} restates the defaults of {schema}: {restated}; keep them in the schema alone"


# Keys whose config default cannot be the Python default: the detector options name their ImageNet file under
# ${paths.weights_root}; the builders, called from Python, take a file or None.
CONFIG_ONLY = {"weights_backbone"}


def _built_defaults(target: Callable[..., Any]) -> dict[str, Any]:
    if isinstance(target, type) and issubclass(target, Activation):
        signature = inspect.signature(target.__init__).parameters
        return {
            "init_weight": target.default_init_weight,
            "init_bias": target.default_init_bias,
            # init, scoring and an activation's own options (AGLU's init_lambda, ...): the constructor's defaults
            **{k: p.default for k, p in signature.items() if k not in ("self", "init_weight", "init_bias")
               and p.default is not inspect.Parameter.empty},
        }  # fmt: skip
    return {
        name: p.default
        for name, p in inspect.signature(target).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


@pytest.mark.parametrize("name", BUILT)
def test_a_schema_agrees_with_what_it_builds(name: str) -> None:
    schema = SCHEMAS[name]
    fields = {f.name: _default(f) for f in dataclasses.fields(schema) if not f.name.startswith("_")}
    target = next(_default(f) for f in dataclasses.fields(schema) if f.name == "_target_")
    built = _built_defaults(get_object(target))
    shared = sorted(set(fields) & set(built) - CONFIG_ONLY)  # a builder without defaults leaves them to the schema
    differ = {key: (fields[key], built[key]) for key in shared if not _same(fields[key], built[key])}
    assert not differ, f"{name} (schema, built): {differ}"


def test_detector_options_default_to_the_resnet_builders() -> None:
    """``DetectorOptions`` (the validated options every builder passes on) keeps the LVIS settings as defaults."""
    options = {f.name: _default(f) for f in dataclasses.fields(DetectorOptions)}
    built = _built_defaults(build_maskrcnn_r50_fpn)
    shared = [key for key in options if key in built]
    assert len(shared) >= 10
    assert {k: options[k] for k in shared} == {k: built[k] for k in shared}
