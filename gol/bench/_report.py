"""What every benchmark's command line shares: the ``--json`` option and writing the report there."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, default=None, help="also write the report to this JSON file")


def write_json(report: dict[str, Any], path: Path | None) -> None:
    """Write ``report`` to ``path`` (indented JSON), creating its folder; nothing when ``path`` is None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s", path)
