"""AP-fixed and AP-pool (Dave et al. 2021) equal their reference constructions on lvis-api, with both engines.

The references are transcriptions of large-vocab-devil (github.com/achalddave/large-vocab-devil):
``scripts/evaluate_ap_fixed.py`` (top k detections per category, ``LVISResults(max_dets=-1)``, ``params.max_dets =
-1``) and ``lvdevil/eval_wrapper.py``'s ``LVISPooledEval.accumulate`` (area "all"; per pool, the per-image records
of its categories concatenated image after image, merge-sorted by score, one precision curve).
"""

from __future__ import annotations

import copy
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gol.data.synthetic_lvis import SyntheticSpec, make_lvis_set
from gol.evaluate import main
from gol.evaluation import evaluate
from gol.evaluation.summary import AP_KEYS
from gol.lvis_compat import LVIS, LVISEval, LVISResults

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SPECS = [
    SyntheticSpec(num_images=10, num_categories=12, dets_per_image=(40, 120), max_instances=6, seed=31),
    SyntheticSpec(num_images=6, num_categories=5, dets_per_image=(290, 360), max_instances=8, seed=32),
    SyntheticSpec(num_images=12, num_categories=20, dets_per_image=(0, 50), score_decimals=1, seed=33),
]
K = 60  # detections per category: small enough that the selection matters on these sets


@pytest.fixture(scope="module", params=SPECS, ids=lambda s: f"seed{s.seed}")
def lvis_set(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    gt, results = make_lvis_set(request.param)
    ann = tmp_path_factory.mktemp("protocols") / "gt.json"
    ann.write_text(json.dumps(gt))
    return ann, results


def _reference_top_k(results: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """evaluate_ap_fixed.py's selection: results grouped by category (first appearance), each sorted by score
    (Python's stable sort, reverse) and cut at k."""
    by_cat: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in copy.deepcopy(results):
        by_cat[r["category_id"]].append(r)
    return [r for anns in by_cat.values() for r in sorted(anns, key=lambda a: a["score"], reverse=True)[:k]]


def _reference_fixed(ann: Path, results: list[dict[str, Any]], iou_type: str, k: int) -> LVISEval:
    gt = LVIS(str(ann))
    lvis_eval = LVISEval(gt, LVISResults(gt, _reference_top_k(results, k), max_dets=-1), iou_type=iou_type)
    lvis_eval.params.max_dets = -1  # no limit on detections per image
    lvis_eval.run()
    return lvis_eval


def _reference_pooled(ann: Path, results: list[dict[str, Any]], iou_type: str, k: int) -> dict[str, float]:
    """LVISPooledEval with max_dets=-1, area "all" only, pools all/r/c/f: lvis-api's own per-image matching,
    then one precision curve per pool, summarised as lvis-api summarises (mean over entries > -1)."""
    gt = LVIS(str(ann))
    lvis_eval = LVISEval(gt, LVISResults(gt, _reference_top_k(results, k), max_dets=-1), iou_type=iou_type)
    p = lvis_eval.params
    p.max_dets = -1
    p.area_rng, p.area_rng_lbl = [p.area_rng[0]], [p.area_rng_lbl[0]]
    lvis_eval.evaluate()
    num_imgs, num_cats, num_thrs = len(p.img_ids), len(p.cat_ids), len(p.iou_thrs)
    groups = {"AP": list(range(num_cats))}
    for key, label in (("APr", "r"), ("APc", "c"), ("APf", "f")):
        groups[key] = list(lvis_eval.freq_groups[p.img_count_lbl.index(label)])
    out = {}
    for key, cats in groups.items():
        records = [lvis_eval.eval_imgs[c * num_imgs + i] for i in range(num_imgs) for c in cats]  # A = 1
        records = [e for e in records if e is not None]
        precision = -np.ones((num_thrs, len(p.rec_thrs)))
        num_gt = sum(int(np.count_nonzero(np.asarray(e["gt_ignore"]) == 0)) for e in records)
        if records and num_gt:
            scores = np.concatenate([e["dt_scores"] for e in records])
            order = np.argsort(-scores, kind="mergesort")
            matched = np.concatenate([e["dt_matches"] for e in records], axis=1)[:, order]
            ignored = np.concatenate([e["dt_ignore"] for e in records], axis=1)[:, order]
            tps = np.cumsum(np.logical_and(matched, np.logical_not(ignored)), axis=1).astype(float)
            fps = np.cumsum(np.logical_and(np.logical_not(matched), np.logical_not(ignored)), axis=1).astype(float)
            for t in range(num_thrs):
                rc = tps[t] / num_gt
                pr = (tps[t] / (fps[t] + tps[t] + np.spacing(1))).tolist()
                for i in range(len(pr) - 1, 0, -1):
                    if pr[i] > pr[i - 1]:
                        pr[i - 1] = pr[i]
                row = [0.0] * len(p.rec_thrs)
                for j, at in enumerate(np.searchsorted(rc, p.rec_thrs, side="left")):
                    if at >= len(pr):
                        break
                    row[j] = pr[at]
                precision[t] = row
        defined = precision[precision > -1]
        out[key] = float(np.mean(defined)) if defined.size else -1.0
    return out


def _close(got: float | None, expected: float) -> bool:
    return got is None if expected == -1 else got is not None and abs(got - expected) <= 1e-12


@pytest.mark.parametrize("engine", ["hotcoco", "lvis"])
def test_ap_fixed_equals_the_reference_construction(lvis_set: tuple[Path, list[Any]], engine: str) -> None:
    ann, results = lvis_set
    result = evaluate(ann, results, engine=engine, segm_area=None, protocols=["fixed"], dets_per_category=K)
    assert result.by_type == {}  # only what was asked
    for iou_type in ("bbox", "segm"):
        reference = _reference_fixed(ann, results, iou_type, K)
        got = result.fixed[iou_type]
        assert list(got.metrics) == list(AP_KEYS)
        bad = {
            k: (got.metrics[k], reference.results[k])
            for k in AP_KEYS
            if not _close(got.metrics[k], reference.results[k])
        }
        assert not bad, (iou_type, bad)
        np.testing.assert_array_equal(got.precision, reference.eval["precision"])


@pytest.mark.parametrize("engine", ["hotcoco", "lvis"])
def test_ap_pool_equals_the_reference_construction(lvis_set: tuple[Path, list[Any]], engine: str) -> None:
    ann, results = lvis_set
    result = evaluate(ann, results, engine=engine, segm_area=None, protocols=["pooled"], dets_per_category=K)
    for iou_type in ("bbox", "segm"):
        reference = _reference_pooled(ann, results, iou_type, K)
        got = result.pooled[iou_type]
        assert set(got) == {"AP", "APr", "APc", "APf"}
        bad = {k: (got[k], reference[k]) for k in reference if not _close(got[k], reference[k])}
        assert not bad, (iou_type, bad)


def test_the_protocols_measure_different_things(lvis_set: tuple[Path, list[Any]]) -> None:
    """On >300 detections per image the cap bites, so AP-fixed (no cap, k per category) and pooled AP differ from
    LVIS AP; and the three come out of one call, in metrics.json's blocks."""
    ann, results = lvis_set
    result = evaluate(ann, results, protocols=["standard", "fixed", "pooled"], dets_per_category=K)
    metrics = result.metrics()
    assert set(metrics) == {"bbox", "segm", "bbox_fixed", "segm_fixed", "bbox_pooled", "segm_pooled", "eval"}
    assert metrics["eval"]["protocols"] == ["standard", "fixed", "pooled"]
    assert metrics["eval"]["dets_per_category"] == K
    assert metrics["segm_pooled"]["AP"] != metrics["segm"]["AP"]
    assert "segm_fixed" in result.table()


def test_too_few_detections_per_category_warn_once(
    lvis_set: tuple[Path, list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """As the reference script: one warning with the count, and the evaluation goes on."""
    ann, results = lvis_set
    with caplog.at_level(logging.WARNING):
        result = evaluate(ann, results, iou_types=["bbox"], protocols=["fixed"], dets_per_category=10_000)
    warnings = [r.getMessage() for r in caplog.records if "fewer than 10000" in r.getMessage()]
    assert len(warnings) == 1 and "eval.infer_topk" in warnings[0]
    assert result.fixed["bbox"].metrics["AP"] is not None


def test_gol_eval_protocols(lvis_set: tuple[Path, list[Any]], tmp_path: Path) -> None:
    ann, results = lvis_set
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(results))
    out = tmp_path / "metrics.json"
    argv = ["--ann", str(ann), "--results", str(dets), "--out", str(out)]
    assert main([*argv, "--protocol", "standard", "fixed", "pooled", "--dets-per-category", str(K)]) == 0
    metrics = json.loads(out.read_text())
    reference = _reference_fixed(ann, results, "segm", K)
    assert _close(metrics["segm_fixed"]["AP"], reference.results["AP"])
    assert metrics["bbox_pooled"]["AP"] == pytest.approx(_reference_pooled(ann, results, "bbox", K)["AP"], abs=1e-12)


def test_gol_eval_bad_protocol_options(
    lvis_set: tuple[Path, list[Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ann, results = lvis_set
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(results))
    argv = ["--ann", str(ann), "--results", str(dets), "--out", str(tmp_path / "m.json")]
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "--protocol", "fixed", "--dets-per-category", "0"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "dets_per_category must be a positive integer" in errors[0]
    assert not (tmp_path / "m.json").exists()
    with pytest.raises(SystemExit):
        main([*argv, "--protocol", "topk"])
    assert "invalid choice: 'topk'" in capsys.readouterr().err
