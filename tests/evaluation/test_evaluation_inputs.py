"""Every bad input to the evaluation gives one clear line, before any evaluation work."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gol.data.synthetic_lvis import SyntheticSpec, make_lvis_set
from gol.evaluation import Detections, EvaluationInputError, GroundTruth, evaluate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

GT, RESULTS = make_lvis_set(SyntheticSpec(num_images=4, num_categories=8, dets_per_image=(5, 20), seed=3))


@pytest.fixture()
def ann(tmp_path: Path) -> Path:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(GT))
    return path


def _raises(error: type[Exception], call: Callable[[], Any], *fragments: str) -> str:
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and message
    for fragment in fragments:
        assert fragment in message, message
    return message


def _results(change: Callable[[list[dict[str, Any]]], Any]) -> list[dict[str, Any]]:
    results = copy.deepcopy(RESULTS)
    change(results)
    return results


def test_image_ids_not_in_annotations(ann: Path) -> None:
    results = _results(lambda r: [d.update(image_id=999_999) for d in r[:3]])
    _raises(EvaluationInputError, lambda: evaluate(ann, results), "image ids", "999999", "3 entries")


def test_category_ids_not_in_dataset(ann: Path) -> None:
    bad_ids = [0, 10_000]
    results = _results(lambda r: [d.update(category_id=bad_ids[i % 2]) for i, d in enumerate(r[:5])])
    _raises(
        EvaluationInputError,
        lambda: evaluate(ann, results),
        "2 id(s) (0, 10000)",
        "5 entries",
        "must use the dataset's category ids",
    )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ([], "expected an object with 'images'"),
        ({"images": [], "annotations": []}, "expected an object with 'images'"),
        ({**GT, "images": [{"id": 1, "height": 4, "width": 4}]}, "lacks ['neg_category_ids'"),
        ({**GT, "categories": [{**c, "frequency": "x"} for c in GT["categories"]]}, "frequencies ['x']"),
        ({**GT, "categories": [{"name": "a"}]}, "lacks ['id', 'frequency']"),
        ({**GT, "annotations": [{**GT["annotations"][0], "image_id": -5}]}, "image ids not in 'images'"),
        ({**GT, "annotations": GT["annotations"] + GT["annotations"][:1]}, "repeats annotation ids"),
        ({**GT, "images": []}, "holds no images"),
    ],
)
def test_annotations_not_lvis_format(tmp_path: Path, content: Any, fragment: str) -> None:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(content))
    _raises(
        EvaluationInputError,
        lambda: GroundTruth.load(path),
        "not LVIS format" if "lacks" in fragment or "expected" in fragment else "",
        fragment,
    )


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda r: r[0].pop("score"), "1 detection(s) lack 'score'"),
        (lambda r: r[1].pop("bbox"), "have 'bbox'; give it on all of them or none"),
        (lambda r: r[2].update(bbox=[1, 2, 3]), "4 numbers"),
        (lambda r: r[0].update(segmentation=[[0, 0, 4, 0, 4, 4]]), "compressed RLE"),
        (lambda r: r[0].update(score=float("nan")), "finite"),
        (lambda r: r[0].update(image_id="seven"), "must be integers"),
    ],
)
def test_malformed_results(ann: Path, change: Callable[[list[dict[str, Any]]], Any], fragment: str) -> None:
    _raises(EvaluationInputError, lambda: evaluate(ann, _results(change)), fragment)


def test_results_file_not_a_list(ann: Path, tmp_path: Path) -> None:
    path = tmp_path / "dets.json"
    path.write_text(json.dumps({"annotations": RESULTS}))
    _raises(EvaluationInputError, lambda: evaluate(ann, path), "must be a JSON list", str(path))


def test_invalid_json(ann: Path, tmp_path: Path) -> None:
    path = tmp_path / "dets.json"
    path.write_text('[{"image_id": 1,')
    _raises(EvaluationInputError, lambda: evaluate(ann, path), "not valid JSON", str(path))
    _raises(EvaluationInputError, lambda: evaluate(path, RESULTS), "annotation file", "not valid JSON")


def test_missing_files(ann: Path, tmp_path: Path) -> None:
    _raises(FileNotFoundError, lambda: evaluate(tmp_path / "nope.json", RESULTS), "annotation file", "nope.json")
    _raises(FileNotFoundError, lambda: evaluate(ann, tmp_path / "none.json"), "results file", "none.json")


def test_mask_size_must_match_image(ann: Path) -> None:
    results = _results(lambda r: r[0]["segmentation"].update(size=[3, 3]))
    _raises(EvaluationInputError, lambda: evaluate(ann, results), "size other than their image's", "[3, 3]")


def test_segm_needs_masks(ann: Path) -> None:
    results = _results(lambda r: [d.pop("segmentation") for d in r])
    _raises(EvaluationInputError, lambda: evaluate(ann, results, iou_types=["segm"]), "segm evaluation needs masks")
    assert evaluate(ann, results, iou_types=["bbox"], engine="hotcoco").by_type.keys() == {"bbox"}


def test_only_the_geometry_of_the_evaluated_types_is_read(ann: Path) -> None:
    segm_only = Detections.from_results(RESULTS, iou_types=["segm"])  # segm_area "mask": areas from the masks
    assert segm_only.boxes is None and len(segm_only.segmentations) == len(RESULTS)
    for segm_area in ("box", None):  # areas from the boxes (None: if the results carry them)
        assert Detections.from_results(RESULTS, iou_types=["segm"], segm_area=segm_area).boxes is not None
    assert Detections.from_results(RESULTS, iou_types=["bbox"]).segmentations is None
    masks_only = _results(lambda r: [d.pop("bbox") for d in r])  # bbox evaluation then boxes the masks
    assert len(Detections.from_results(masks_only, iou_types=["bbox"]).segmentations) == len(RESULTS)
    bad_boxes = _results(lambda r: r[0].update(bbox=[1, 2]))  # not read when only segm is evaluated
    assert evaluate(ann, bad_boxes, iou_types=["segm"]).by_type.keys() == {"segm"}
    _raises(EvaluationInputError, lambda: evaluate(ann, bad_boxes, iou_types=["bbox"]), "4 numbers")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"engine": "coco"}, "unknown evaluation engine 'coco'"),
        ({"iou_types": ["keypoints"]}, "iou_types must be"),
        ({"iou_types": ["bbox", "bbox"]}, "iou_types must be"),
        ({"iou_types": []}, "iou_types must be"),
        ({"max_dets": 0}, "max_dets must be"),
        ({"segm_area": "area"}, "unknown segm_area 'area'"),
    ],
)
def test_bad_options(ann: Path, options: dict[str, Any], fragment: str) -> None:
    _raises(EvaluationInputError, lambda: evaluate(ann, RESULTS, **options), fragment)


def test_segm_annotation_without_segmentation(ann: Path, tmp_path: Path) -> None:
    gt = copy.deepcopy(GT)
    for a in gt["annotations"]:
        a.pop("segmentation")
    path = tmp_path / "gt_boxes.json"
    path.write_text(json.dumps(gt))
    for engine in ("lvis", "hotcoco"):
        _raises(
            EvaluationInputError,
            lambda e=engine: evaluate(path, RESULTS, engine=e, iou_types=["segm"]),
            "no polygon or RLE 'segmentation'",
        )
    assert evaluate(path, RESULTS, engine="hotcoco", iou_types=["bbox"]).metrics()["bbox"]["AP"] is not None


def test_nan_scores_in_a_file_are_named(ann: Path, tmp_path: Path) -> None:
    """json.dump writes a NaN score as NaN, which is not JSON: the one line says so."""
    path = tmp_path / "nan.json"
    path.write_text(json.dumps([{**RESULTS[0], "score": float("nan")}]))
    with pytest.raises(EvaluationInputError, match="holds NaN or Infinity") as error:
        evaluate(ann, path)
    assert "\n" not in str(error.value)
