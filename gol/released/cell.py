"""A released setting, a paper cell, and how a resolved ``gol`` config is compared with them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Setting:
    """One setting of a released config and the ``gol`` key that reproduces it.

    Attributes:
        key: dotted ``gol`` config key, e.g. ``detector.box_nms_thresh``.
        value: the value that key holds in the paper cell (a file name for ``*weights*`` keys).
        official: what the released config says (its key and value, or where it comes from).
        matched: False when ``gol`` cannot reproduce it; ``why`` says what differs.
    """

    key: str  # "" for a setting no key holds (always so in gol when matched; not reproducible when not)
    value: Any
    official: str
    matched: bool = True
    why: str = ""

    def holds(self, actual: Any) -> bool:
        """Whether a resolved config value equals this setting's value (file keys compare the file name)."""
        if "weights" in self.key and isinstance(actual, str) and isinstance(self.value, str):
            return Path(actual).name == self.value
        if isinstance(self.value, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
            return float(actual) == self.value
        if isinstance(self.value, (list, tuple)) and isinstance(actual, (list, tuple)):
            return list(actual) == list(self.value)
        return bool(actual == self.value)


@dataclass(frozen=True)
class ReleasedCell:
    """A paper cell: its experiment, its swept choices, its released config and every setting of it."""

    experiment: str
    choices: Mapping[str, str]
    config: str | None  # repository and file, or None when no released config exists for this cell
    settings: tuple[Setting, ...]
    note: str = ""

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.choices.items())

    def deviations(self, resolved: Mapping[str, Any]) -> list[str]:
        """``key=value`` for every matched setting the resolved config holds another value for."""
        found = []
        for s in self.settings:
            if not s.matched or not s.key:
                continue
            actual = config_value(resolved, s.key)
            if not s.holds(actual):
                found.append(f"{s.key}={show_value(actual)}")
        return found


@dataclass(frozen=True)
class _Missing:
    def __repr__(self) -> str:
        return "<absent>"


MISSING_KEY = _Missing()


def config_value(cfg: Mapping[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return MISSING_KEY
        node = node[part]
    return node


def show_value(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
