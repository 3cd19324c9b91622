"""The evaluation benchmark runs at smoke size and finds the engines identical."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gol.bench.eval import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_bench_eval_smoke(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "bench.json"
    with caplog.at_level(logging.INFO):
        assert main(["--size", "smoke", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["max_metric_difference"] == {"bbox": 0.0, "segm": 0.0}
    assert report["precision_identical"] == {"bbox": True, "segm": True}
    assert set(report["ratio"]) == {"bbox", "segm"} and all(r > 0 for r in report["ratio"].values())
    assert "ratio" in caplog.text
