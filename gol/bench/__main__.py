"""``python -m gol.bench <name> [args]`` runs the benchmark ``gol.bench.<name>``; without a name, lists them."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path


def available() -> list[str]:
    """Names of the benchmark modules in this package (each has a ``main(argv)``)."""
    folder = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if not m.name.startswith("_"))


def _summary(name: str) -> str:
    """First docstring line of a benchmark, read without importing it (imports can take seconds)."""
    import ast

    source = (Path(__file__).parent / f"{name}.py").read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source)) or ""
    return doc.splitlines()[0] if doc else ""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    names = available()
    if not args or args[0] in ("-h", "--help"):
        lines = ["usage: python -m gol.bench <name> [args]  (python -m gol.bench <name> --help for its options)", ""]
        lines += [f"  {name:<12} {_summary(name)}" for name in names]
        sys.stdout.write("\n".join(lines) + "\n")
        return 0
    name, rest = args[0], args[1:]
    if name not in names:
        sys.stderr.write(f"unknown benchmark {name!r}; available: {', '.join(names)}\n")
        return 2
    module = importlib.import_module(f"gol.bench.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
