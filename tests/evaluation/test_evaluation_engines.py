"""The hotcoco engine equals lvis-api (the "lvis" engine) exactly, on many generated sets and edge cases: every one
of the 13 metrics, and the precision and recall arrays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gol.data.synthetic_lvis import SyntheticSpec, make_lvis_set
from gol.evaluation import ENGINES, EvaluationResult, GroundTruth, evaluate
from gol.evaluation.prepare import cap_per_image, top_per_category
from gol.evaluation.rles import mask_areas
from gol.lvis_compat import LVIS, LVISResults

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _write(tmp_path: Path, spec: SyntheticSpec) -> tuple[Path, list[dict[str, Any]]]:
    gt, results = make_lvis_set(spec)
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(gt))
    return ann, results


def _assert_identical(got_result: EvaluationResult, lvis: EvaluationResult) -> None:
    assert got_result.by_type.keys() == lvis.by_type.keys()
    for iou_type, ref in lvis.by_type.items():
        got = got_result.by_type[iou_type]
        assert list(got.metrics) == list(ref.metrics) and len(ref.metrics) == 13
        np.testing.assert_array_equal(got.precision, ref.precision, err_msg=iou_type)
        np.testing.assert_array_equal(got.recall, ref.recall, err_msg=iou_type)
        for key, value in ref.metrics.items():
            if value is None:
                assert got.metrics[key] is None, (iou_type, key)
            else:
                assert got.metrics[key] == pytest.approx(value, abs=1e-9, rel=0), (iou_type, key)


SPECS = [
    # (images, categories, detections per image, instances, score decimals, ignore flags, image sides)
    SyntheticSpec(num_images=8, num_categories=30, dets_per_image=(0, 60), seed=1),
    SyntheticSpec(num_images=4, num_categories=6, dets_per_image=(300, 360), max_instances=10, seed=2),
    SyntheticSpec(num_images=12, num_categories=3, dets_per_image=(5, 40), score_decimals=1, seed=3),
    SyntheticSpec(
        num_images=6, num_categories=40, dets_per_image=(20, 120), score_decimals=None, ignore_flags=True, seed=4
    ),
    SyntheticSpec(num_images=1, num_categories=1, dets_per_image=(10, 30), seed=5),
    SyntheticSpec(
        num_images=10,
        num_categories=15,
        dets_per_image=(10, 80),
        image_size=(8, 300),
        max_instances=8,
        ignore_flags=True,
        seed=6,
    ),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"seed{s.seed}")
def test_hotcoco_equals_lvis_api(tmp_path: Path, spec: SyntheticSpec) -> None:
    ann, results = _write(tmp_path, spec)
    gt = GroundTruth.load(ann)
    _assert_identical(evaluate(gt, results, engine="hotcoco"), evaluate(gt, results, engine="lvis"))


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    images=st.integers(1, 12),
    categories=st.integers(1, 25),
    most_dets=st.integers(0, 330),
    decimals=st.sampled_from([None, 1, 2]),
    ignore=st.booleans(),
)
def test_hotcoco_equals_lvis_api_random_sets(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    images: int,
    categories: int,
    most_dets: int,
    decimals: int | None,
    ignore: bool,
) -> None:
    spec = SyntheticSpec(
        num_images=images,
        num_categories=categories,
        dets_per_image=(0, most_dets),
        score_decimals=decimals,
        ignore_flags=ignore,
        max_instances=6,
        seed=seed,
    )
    ann, results = _write(tmp_path_factory.mktemp("random"), spec)
    gt = GroundTruth.load(ann)
    _assert_identical(evaluate(gt, results, engine="hotcoco"), evaluate(gt, results, engine="lvis"))


@pytest.fixture(scope="module")
def edge_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    spec = SyntheticSpec(num_images=8, num_categories=12, dets_per_image=(20, 150), max_instances=6, seed=11)
    gt, results = make_lvis_set(spec)
    ann = tmp_path_factory.mktemp("edge") / "gt.json"
    ann.write_text(json.dumps(gt))
    return ann, results


@pytest.mark.parametrize("max_dets", [-1, 1, 7])
def test_hotcoco_equals_lvis_api_max_dets(edge_set: tuple[Path, list[dict[str, Any]]], max_dets: int) -> None:
    ann, results = edge_set
    _assert_identical(
        evaluate(ann, results, engine="hotcoco", max_dets=max_dets),
        evaluate(ann, results, engine="lvis", max_dets=max_dets),
    )


@pytest.mark.parametrize("drop", ["bbox", "segmentation"])
def test_hotcoco_equals_lvis_api_one_geometry(edge_set: tuple[Path, list[dict[str, Any]]], drop: str) -> None:
    """Mask-only results (lvis-api takes boxes and areas from masks) and box-only results."""
    ann, results = edge_set
    results = [{k: v for k, v in r.items() if k != drop} for r in results]
    types = ["bbox"] if drop == "segmentation" else ["bbox", "segm"]
    _assert_identical(
        evaluate(ann, results, engine="hotcoco", iou_types=types),
        evaluate(ann, results, engine="lvis", iou_types=types),
    )


def test_empty_results_give_zero_ap_with_warning(
    edge_set: tuple[Path, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    ann, _ = edge_set
    # lvis-api 0.5.3 itself raises IndexError on an empty list (LVISResults reads result_anns[0]) ...
    with pytest.raises(IndexError):
        LVISResults(LVIS(str(ann)), [])
    # ... so both engines give what lvis-api computes when every detection is dropped: 0 where GT exists.
    got = evaluate(ann, [], engine="hotcoco")
    assert "no detections" in caplog.text
    _assert_identical(got, evaluate(ann, [], engine="lvis"))
    for metrics in (r.metrics for r in got.by_type.values()):
        assert metrics["AP"] == 0.0 and all(v in (0.0, None) for v in metrics.values())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), max_size=40), st.integers(1, 6))
def test_cap_per_image_equals_lvis_results(dets: list[tuple[int, int]], max_dets: int) -> None:
    anns = [{"image_id": i, "score": s / 5, "n": n} for n, (i, s) in enumerate(dets)]
    kept = LVISResults.limit_dets_per_image(None, anns, max_dets)  # lvis-api's own selection (a pure function)
    got = cap_per_image(np.array([i for i, _ in dets], dtype=np.int64), np.array([s / 5 for _, s in dets]), max_dets)
    assert sorted(a["n"] for a in kept) == got.tolist()


def test_mask_areas_beyond_pycocotools_uint8_limit() -> None:
    rle = mask_utils.frPyObjects([[0, 0, 10, 0, 10, 10, 0, 10]], 20, 20)[0]
    np.testing.assert_array_equal(mask_areas([rle] * 600), np.full(600, float(mask_utils.area(rle))))


def test_hotcoco_engine_runs_on_lvis_files(edge_set: tuple[Path, list[dict[str, Any]]]) -> None:
    ann, results = edge_set
    assert evaluate(ann, results).engine == "hotcoco"  # the default


@pytest.mark.parametrize("quirk", ["ignore", "id0", "iscrowd"])
def test_files_only_lvis_api_reads_exactly_go_to_lvis_api(
    tmp_path: Path, quirk: str, caplog: pytest.LogCaptureFixture
) -> None:
    """lvis-api's optional 'ignore' flag, its id-0 match flag (a detection matched to annotation id 0 never counts)
    and iscrowd (which it ignores): hotcoco reads each otherwise, so such files are evaluated by lvis-api itself, and
    say so."""
    spec = SyntheticSpec(
        num_images=6, num_categories=8, dets_per_image=(20, 80), ignore_flags=quirk == "ignore", seed=12
    )
    gt, results = make_lvis_set(spec)
    if quirk == "id0":
        gt["annotations"][0]["id"] = 0
    if quirk == "iscrowd":  # lvis-api ignores it; hotcoco matches crowd annotations as COCO does
        gt["annotations"][0]["iscrowd"] = 1
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(gt))
    caplog.set_level("INFO")
    got = evaluate(ann, results)
    assert got.engine == "lvis" and "lvis-api itself" in caplog.text
    _assert_identical(got, evaluate(ann, results, engine="lvis"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), max_size=40), st.integers(1, 6))
def test_top_per_category_equals_the_reference_selection(dets: list[tuple[int, int]], k: int) -> None:
    """large-vocab-devil's evaluate_ap_fixed.py: per category, sorted(score, reverse=True)[:k]."""
    by_cat: dict[int, list[int]] = {}
    for n, (c, _) in enumerate(dets):
        by_cat.setdefault(c, []).append(n)
    expected = sorted(n for ns in by_cat.values() for n in sorted(ns, key=lambda n: dets[n][1] / 5, reverse=True)[:k])
    got = top_per_category(np.array([c for c, _ in dets], dtype=np.int64), np.array([s / 5 for _, s in dets]), k)
    assert got.tolist() == expected


@pytest.fixture(scope="module")
def crowded_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """Over 400 detections of one category in one image: hotcoco alone keeps its params.max_dets (300) best of an
    (image, category), lvis-api keeps them all, which AP-fixed, AP-pool and max_dets=-1 rely on."""
    spec = SyntheticSpec(num_images=2, num_categories=2, dets_per_image=(700, 800), max_instances=10, seed=2)
    gt, results = make_lvis_set(spec)
    ann = tmp_path_factory.mktemp("crowded") / "gt.json"
    ann.write_text(json.dumps(gt))
    groups: dict[tuple[int, int], int] = {}
    for r in results:
        groups[r["image_id"], r["category_id"]] = groups.get((r["image_id"], r["category_id"]), 0) + 1
    assert max(groups.values()) > 400
    return ann, results


def test_hotcoco_keeps_every_detection_of_a_crowded_image_and_category(
    crowded_set: tuple[Path, list[dict[str, Any]]],
) -> None:
    ann, results = crowded_set
    _assert_identical(evaluate(ann, results, max_dets=-1), evaluate(ann, results, engine="lvis", max_dets=-1))
    fixed = {
        e: evaluate(ann, results, engine=e, protocols=["fixed", "pooled"], dets_per_category=1000) for e in ENGINES
    }
    for iou_type in ("bbox", "segm"):
        np.testing.assert_array_equal(
            fixed["hotcoco"].fixed[iou_type].precision, fixed["lvis"].fixed[iou_type].precision
        )
        assert fixed["hotcoco"].pooled[iou_type] == fixed["lvis"].pooled[iou_type]
