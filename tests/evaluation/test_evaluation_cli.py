"""gol-eval against the official lvis-api, called directly as detectron2 calls it, on a generated LVIS set."""

from __future__ import annotations

import copy
import json
import logging
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gol.data.synthetic_lvis import SyntheticSpec, make_lvis_set
from gol.evaluate import main
from gol.evaluation import METRIC_KEYS
from gol.lvis_compat import LVIS, LVISEval, LVISResults

pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")

# Several images with more than 300 detections, categories across r/c/f (some never annotated), negative and
# not-exhaustive ids, polygons and RLE, tied scores.
SPEC = SyntheticSpec(num_images=10, num_categories=24, dets_per_image=(40, 340), max_instances=5, seed=7)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    gt, results = make_lvis_set(SPEC)
    assert max(np.unique([r["image_id"] for r in results], return_counts=True)[1]) > 300
    folder = tmp_path_factory.mktemp("cli")
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "dets.json").write_text(json.dumps(results))
    return folder / "gt.json", folder / "dets.json"


@pytest.fixture(scope="module")
def official(files: tuple[Path, Path]) -> dict[str, LVISEval]:
    """lvis-api run directly on the file as given, 300 per image: its segm results carry 'bbox', so segm areas are
    box areas (gol-eval's default on such a file)."""
    ann, dets = files
    out = {}
    for iou_type in ("bbox", "segm"):
        results: list[dict[str, Any]] = json.loads(dets.read_text())
        lvis_gt = LVIS(str(ann))
        lvis_eval = LVISEval(lvis_gt, LVISResults(lvis_gt, results, max_dets=300), iou_type=iou_type)
        lvis_eval.run()
        out[iou_type] = lvis_eval
    return out


def _assert_matches(metrics: dict[str, dict[str, float | None]], official: dict[str, LVISEval]) -> None:
    assert set(metrics) == {"bbox", "segm", "eval"}
    assert metrics["eval"] == {"segm_area": "box"}  # the file's detections carry 'bbox'
    for iou_type, lvis_eval in official.items():
        assert set(metrics[iou_type]) == set(METRIC_KEYS)
        for key in METRIC_KEYS:
            expected = float(lvis_eval.results[key])
            got = metrics[iou_type][key]
            if expected == -1:
                assert got is None, (iou_type, key)
            else:
                assert got == pytest.approx(expected, abs=1e-9, rel=0), (iou_type, key)


@pytest.mark.parametrize("engine", ["lvis", "hotcoco"])
def test_gol_eval_equals_lvis_api(
    files: tuple[Path, Path], official: dict[str, LVISEval], tmp_path: Path, engine: str
) -> None:
    ann, dets = files
    out, per_cat = tmp_path / "metrics.json", tmp_path / "per_category.json"
    assert (
        main(
            [
                "--ann",
                str(ann),
                "--results",
                str(dets),
                "--out",
                str(out),
                "--per-category",
                str(per_cat),
                "--engine",
                engine,
            ]
        )
        == 0
    )
    _assert_matches(json.loads(out.read_text()), official)
    assert all(official["segm"].results[k] > 0 for k in ("APr", "APc", "APf"))  # every group is exercised


@pytest.mark.parametrize("engine", ["hotcoco", "lvis"])
def test_gol_eval_subprocess(
    files: tuple[Path, Path], official: dict[str, LVISEval], tmp_path: Path, engine: str
) -> None:
    ann, dets = files
    out = tmp_path / "metrics.json"
    gol_eval = Path(sys.executable).with_name("gol-eval")  # the console script, as typed
    proc = subprocess.run(
        [str(gol_eval), "--ann", str(ann), "--results", str(dets), "--out", str(out), "--engine", engine],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # stdout holds the metric table alone (a header and one row per IoU type); lvis-api's chatter, if any, and
    # the log go to stderr.
    lines = proc.stdout.splitlines()
    assert lines[0].split() == [
        *["AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"],
        "AR@300",
        "ARs@300",
        "ARm@300",
        "ARl@300",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["bbox", "segm"]
    assert f"wrote {out}" in proc.stderr
    _assert_matches(json.loads(out.read_text()), official)


def test_per_category_ap_matches_lvis_precision(
    files: tuple[Path, Path], official: dict[str, LVISEval], tmp_path: Path
) -> None:
    ann, dets = files
    per_cat = tmp_path / "per_category.json"
    assert (
        main(
            [
                "--ann",
                str(ann),
                "--results",
                str(dets),
                "--out",
                str(tmp_path / "m.json"),
                "--per-category",
                str(per_cat),
            ]
        )
        == 0
    )
    rows = json.loads(per_cat.read_text())["categories"]
    gt = json.loads(ann.read_text())
    cats = sorted(gt["categories"], key=lambda c: c["id"])
    assert [r["id"] for r in rows] == [c["id"] for c in cats]
    for k, (row, cat) in enumerate(zip(rows, cats)):
        for field in ("name", "frequency", "image_count"):
            assert row[field] == cat[field]
        for iou_type, lvis_eval in official.items():
            s = lvis_eval.eval["precision"][:, :, k, 0]
            expected = float(np.mean(s[s > -1])) if np.any(s > -1) else None
            got = row[f"{iou_type}_AP"]
            assert (got is None) == (expected is None), (row["id"], iou_type)
            if expected is not None:
                assert got == pytest.approx(expected, abs=1e-12, rel=0)
    # Per-category APs average to lvis-api's AP (every category with ground truth has all T x R entries).
    for iou_type, lvis_eval in official.items():
        aps = [r[f"{iou_type}_AP"] for r in rows if r[f"{iou_type}_AP"] is not None]
        assert math.isclose(float(np.mean(aps)), float(lvis_eval.results["AP"]), abs_tol=1e-12)
    assert any(r["bbox_AP"] is None for r in rows)  # never-annotated categories are undefined, not 0


def test_gol_eval_bbox_only(files: tuple[Path, Path], official: dict[str, LVISEval], tmp_path: Path) -> None:
    ann, dets = files
    out = tmp_path / "metrics.json"
    assert main(["--ann", str(ann), "--results", str(dets), "--out", str(out), "--iou-types", "bbox"]) == 0
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"bbox"}
    for key in METRIC_KEYS:
        expected = float(official["bbox"].results[key])
        assert metrics["bbox"][key] == (None if expected == -1 else pytest.approx(expected, abs=1e-9, rel=0))


def test_gol_eval_bad_input_is_one_line(
    files: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ann, dets = files
    results = json.loads(dets.read_text())
    bad = copy.deepcopy(results[:5])
    bad[0]["category_id"] = 10_000
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(bad))
    with caplog.at_level(logging.ERROR):
        status = main(["--ann", str(ann), "--results", str(bad_file), "--out", str(tmp_path / "m.json")])
    assert status == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0] and "10000" in errors[0]
    assert not (tmp_path / "m.json").exists()


def test_gol_eval_needs_files_or_run(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--out", "m.json"])
    assert e.value.code == 2
    assert "--ann --results" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--run", "somewhere", "--ann", "gt.json"])
