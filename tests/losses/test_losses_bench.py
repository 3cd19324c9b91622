"""The loss benchmark runs and reports its ratios (no timing assertions: the machines are noisy)."""

from __future__ import annotations

import json
from pathlib import Path

from gol.bench.loss import lvis_like_stats, main, run


def test_lvis_like_stats_has_lvis_v1_tail() -> None:
    stats = lvis_like_stats()
    tail = int((stats.image_frequency < 0.0011).sum())
    assert stats.num_classes == 1203 and 790 <= tail <= 830  # LVIS v1 at lambda 0.0011: 815


def test_smoke_run_and_json(tmp_path: Path) -> None:
    result = run(size="smoke", repeats=1)
    assert set(result["median_ms"]) == {"bce", "gol", "official"}  # type: ignore[arg-type]
    assert all(v > 0 for v in result["ratio_to_bce"].values())  # type: ignore[union-attr]
    out = tmp_path / "bench.json"
    assert main(["--size", "smoke", "--repeats", "1", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["shape"] == [512, 1203]
