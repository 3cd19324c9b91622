"""The error breakdown (TIDE, from hotcoco) per frequency group: its baseline is the group's AP50, every error
type is reported, and it reaches metrics.json, gol-eval's table and the option checks."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gol.data.synthetic_lvis import SyntheticSpec, make_lvis_set
from gol.evaluate import main
from gol.evaluation import EvaluationInputError, GroundTruth, evaluate
from gol.evaluation.summary import IOU_THRESHOLDS, mean_defined
from gol.evaluation.tide import ERROR_TYPES, GROUPS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def lvis_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    gt, results = make_lvis_set(SyntheticSpec(num_images=12, num_categories=15, dets_per_image=(30, 90), seed=51))
    ann = tmp_path_factory.mktemp("tide") / "gt.json"
    ann.write_text(json.dumps(gt))
    return ann, results


def test_breakdown_per_group_starts_from_the_group_ap50(lvis_set: tuple[Path, list[Any]]) -> None:
    ann, results = lvis_set
    result = evaluate(ann, results, errors=True)
    gt = GroundTruth.load(ann)
    t50 = int(np.flatnonzero(IOU_THRESHOLDS == 0.5)[0])
    groups = {"all": np.arange(gt.num_categories), **dict(zip("rcf", gt.frequency_groups()))}
    for iou_type in ("bbox", "segm"):
        breakdown = result.errors[iou_type]
        assert list(breakdown) == list(GROUPS)
        precision = result.by_type[iou_type].precision
        for group, members in groups.items():
            assert set(breakdown[group]) == {"AP50", *ERROR_TYPES}
            assert breakdown[group]["AP50"] == pytest.approx(mean_defined(precision[t50, :, members, 0]), abs=1e-12)
            assert all(v >= 0 for v in breakdown[group].values())
        assert breakdown["all"]["Dupe"] > 0  # the set duplicates detections of the same object
    blocks = result.metrics()
    assert {f"segm_errors_{g}" for g in GROUPS} <= set(blocks)
    table = result.table()
    assert "segm_errors_r" in table and "Dupe" in table


def test_breakdown_needs_hotcoco(lvis_set: tuple[Path, list[Any]], caplog: pytest.LogCaptureFixture) -> None:
    ann, results = lvis_set
    with pytest.raises(EvaluationInputError, match="comes from hotcoco"):
        evaluate(ann, results, engine="lvis", errors=True)


def test_gol_eval_errors(lvis_set: tuple[Path, list[Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ann, results = lvis_set
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(results))
    out = tmp_path / "metrics.json"
    assert main(["--ann", str(ann), "--results", str(dets), "--out", str(out), "--errors"]) == 0
    assert "Miss" in capsys.readouterr().out
    assert set(json.loads(out.read_text())["bbox_errors_all"]) == {"AP50", *ERROR_TYPES}


def test_gol_eval_errors_with_the_reference_engine_is_one_line(
    lvis_set: tuple[Path, list[Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ann, results = lvis_set
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(results))
    with caplog.at_level(logging.ERROR):
        status = main(["--ann", str(ann), "--results", str(dets), "--out", str(tmp_path / "m.json"), "--errors",
                       "--engine", "lvis"])  # fmt: skip
    assert status == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "comes from hotcoco" in errors[0]
