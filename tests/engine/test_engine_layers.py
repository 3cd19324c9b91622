"""Imports point down: data -> activations -> losses -> models / evaluation -> run services -> engine -> entry
points, with the config schemas, the released-config table and the torch-free helpers they need at the bottom."""

from __future__ import annotations

import ast
from pathlib import Path

import gol

PACKAGE = Path(gol.__file__).parent
LAYERS: list[set[str]] = [
    {"numerics", "lvis_compat", "config", "released", "files", "fingerprint"},
    {"data"},
    {"activations"},
    {"losses"},
    {"models", "evaluation"},
    {
        "optim",
        "distributed",
        "checkpoint",
        "record",
        "tracking",
        "loader",
        "inference",
        "build",
        "validate",
        "provenance",
    },
    {"engine", "loop"},
    {"train", "evaluate", "bench"},
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def _part(path: Path) -> str:
    """The top-level part of gol a module belongs to (``gol/losses/eql.py`` -> ``losses``)."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_parts(tree: ast.AST) -> set[str]:
    parts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = node.module.split(".")
            if names[0] == "gol":
                parts.add(names[1] if len(names) > 1 else "")
                if len(names) == 1:  # from gol import record
                    parts.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            parts.update(a.name.split(".")[1] for a in node.names if a.name.startswith("gol."))
    parts.discard("")
    return parts


def test_every_part_of_gol_has_a_layer() -> None:
    parts = {_part(p) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE}
    assert parts == set(LEVEL), sorted(parts ^ set(LEVEL))


def test_imports_point_down() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE and path.name == "__init__.py":
            continue
        mine = LEVEL[_part(path)]
        for part in _imported_parts(ast.parse(path.read_text())):
            if LEVEL[part] > mine:
                upward.append(f"{path.relative_to(PACKAGE.parent)} imports gol.{part}")
    assert not upward, upward
