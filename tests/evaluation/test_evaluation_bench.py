"""The evaluation benchmark runs its whole commands at smoke size and finds gol-eval equal to lvis-api."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gol.bench.eval import COMMANDS, main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_bench_eval_smoke(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "bench.json"
    with caplog.at_level(logging.INFO):
        assert main(["--size", "smoke", "--repeat", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["seconds"]) == set(report["peak_rss_mib"]) == set(COMMANDS)
    assert report["max_metric_difference"]["lvis-api"] == 0.0
    assert report["max_metric_difference"]["gol-eval"] == 0.0
    assert report["max_metric_difference"]["gol-eval, 3 protocols"] == 0.0
    # hotcoco alone evaluates the set's zero-area detections, which lvis-api drops: its numbers differ.
    assert report["max_metric_difference"]["hotcoco"] > 0
    assert all(r > 0 for r in report["ratio"].values())
    assert "lvis-api / gol-eval" in caplog.text
