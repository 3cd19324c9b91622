"""``segm_area``: segm detections go to APs/APm/APl by their box's w*h ("box", lvis-api on segm results that carry
``bbox``, as mmdetection writes them) or by their mask's area ("mask", lvis-api on mask-only segm results, as
detectron2 gives them). Both engines equal lvis-api itself for each, in evaluate(), in-training evaluation and
gol-eval."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from replay_detector import replay_outputs, replay_split
from torch import Tensor, nn

from gol.config.train import EvalConf
from gol.data.synthetic_lvis import SyntheticSpec, make_lvis_set
from gol.evaluate import main
from gol.evaluation import EvaluationInputError, EvaluationResult, GroundTruth, evaluate
from gol.evaluation.convert import outputs_to_results
from gol.evaluation.rles import mask_areas
from gol.evaluation.summary import AREA_RANGES
from gol.inference import evaluate_model
from gol.lvis_compat import LVIS, LVISEval, LVISResults

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

AREA_KEYS = ("APs", "APm", "APl")


def _area_range(area: np.ndarray) -> np.ndarray:
    """(n,) index of the first of small/medium/large whose inclusive bounds hold ``area``, as lvis-api tests them."""
    small, medium = AREA_RANGES[1][1], AREA_RANGES[2][1]
    return np.where(area <= small, 0, np.where(area <= medium, 1, 2))


def _boxes_apart_from_masks(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each detection's box scaled about its centre (x1.5 or x0.7 a side, alternately), every 25th one made
    zero-width: box and mask areas then often lie in different area ranges, and some boxes have area 0 while
    their masks do not (dropped under "box" only). A detector's box need not be its mask's bounding box."""
    out = copy.deepcopy(results)
    for i, r in enumerate(out):
        x, y, w, h = r["bbox"]
        f = 1.5 if i % 2 else 0.7
        r["bbox"] = [x + w * (1 - f) / 2, y + h * (1 - f) / 2, 0.0 if i % 25 == 0 else w * f, h * f]
    return out


def _straddling(results: list[dict[str, Any]]) -> int:
    box = np.array([r["bbox"][2] * r["bbox"][3] for r in results])
    mask = mask_areas([r["segmentation"] for r in results])
    return int(np.count_nonzero(_area_range(box) != _area_range(mask)))


def _lvis_api(ann: Path, results: list[dict[str, Any]], *, with_boxes: bool) -> LVISEval:
    """lvis-api called directly on segm results with or without their ``bbox``."""
    given = [dict(r) for r in results] if with_boxes else [{k: v for k, v in r.items() if k != "bbox"} for r in results]
    lvis_gt = LVIS(str(ann))
    lvis_eval = LVISEval(lvis_gt, LVISResults(lvis_gt, given, max_dets=300), iou_type="segm")
    lvis_eval.run()
    return lvis_eval


def _assert_equals_lvis_api(result: EvaluationResult, lvis_eval: LVISEval) -> None:
    got = result.by_type["segm"]
    np.testing.assert_array_equal(got.precision, lvis_eval.eval["precision"])
    np.testing.assert_array_equal(got.recall, lvis_eval.eval["recall"])
    for key, value in got.metrics.items():
        expected = float(lvis_eval.results[key])
        if expected == -1:
            assert value is None, key
        else:
            assert value == pytest.approx(expected, abs=1e-9, rel=0), key


def _differ(a: dict[str, float | None], b: dict[str, float | None]) -> list[str]:
    return [k for k in AREA_KEYS if a[k] != b[k]]


SPECS = [
    SyntheticSpec(num_images=8, num_categories=10, dets_per_image=(20, 80), max_instances=6, seed=21),
    SyntheticSpec(num_images=4, num_categories=6, dets_per_image=(290, 340), max_instances=8, seed=22),
    SyntheticSpec(
        num_images=6, num_categories=12, dets_per_image=(10, 60), image_size=(40, 220), ignore_flags=True, seed=23
    ),
]


@pytest.fixture(scope="module", params=SPECS, ids=lambda s: f"seed{s.seed}")
def lvis_set(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    gt, results = make_lvis_set(request.param)
    ann = tmp_path_factory.mktemp("segm_area") / "gt.json"
    ann.write_text(json.dumps(gt))
    results = _boxes_apart_from_masks(results)
    assert _straddling(results) >= len(results) // 10  # the convention decides the range of many detections
    return ann, results


@pytest.mark.parametrize("segm_area", ["box", "mask"])
def test_both_engines_equal_lvis_api_for_each_convention(lvis_set: tuple[Path, list[Any]], segm_area: str) -> None:
    ann, results = lvis_set
    gt = GroundTruth.load(ann)
    expected = _lvis_api(ann, results, with_boxes=segm_area == "box")
    for engine in ("hotcoco", "lvis"):
        result = evaluate(gt, results, engine=engine, iou_types=["segm"], segm_area=segm_area)
        assert result.segm_area == segm_area and result.metrics()["eval"] == {"segm_area": segm_area}
        _assert_equals_lvis_api(result, expected)


def test_the_convention_changes_the_area_metrics(lvis_set: tuple[Path, list[Any]]) -> None:
    """The exactness test above would fail with the wrong convention: lvis-api's numbers differ between them."""
    ann, results = lvis_set
    with_boxes = _lvis_api(ann, results, with_boxes=True).results
    without = _lvis_api(ann, results, with_boxes=False).results
    assert [k for k in AREA_KEYS if with_boxes[k] != without[k]], (with_boxes, without)
    gt = GroundTruth.load(ann)
    box = evaluate(gt, results, iou_types=["segm"], segm_area="box").metrics()["segm"]
    mask = evaluate(gt, results, iou_types=["segm"], segm_area="mask").metrics()["segm"]
    assert _differ(box, mask)


def test_plain_generated_sets_equal_lvis_api_for_each_convention(tmp_path: Path) -> None:
    """Octagon masks in their own bounding boxes (box and mask areas a little apart), bbox evaluated alongside."""
    gt, results = make_lvis_set(SyntheticSpec(num_images=10, num_categories=15, dets_per_image=(10, 80), seed=24))
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(gt))
    assert _straddling(results) > 0
    for segm_area in ("box", "mask"):
        expected = _lvis_api(ann, results, with_boxes=segm_area == "box")
        got = evaluate(ann, results, engine="hotcoco", segm_area=segm_area)
        lvis = evaluate(ann, results, engine="lvis", segm_area=segm_area)
        _assert_equals_lvis_api(got, expected)
        _assert_equals_lvis_api(lvis, expected)
        assert got.metrics()["bbox"] == lvis.metrics()["bbox"]  # bbox evaluation is untouched by the option


def test_mask_is_the_default_and_box_needs_boxes(lvis_set: tuple[Path, list[Any]]) -> None:
    ann, results = lvis_set
    gt = GroundTruth.load(ann)
    assert evaluate(gt, results, iou_types=["segm"]).segm_area == "mask"
    assert evaluate(gt, results, iou_types=["bbox"]).metrics().keys() == {"bbox"}  # no segm, no convention
    masks_only = [{k: v for k, v in r.items() if k != "bbox"} for r in results[:50]]
    with pytest.raises(EvaluationInputError, match="carry no 'bbox'") as error:
        evaluate(gt, masks_only, iou_types=["segm"], segm_area="box")
    assert "\n" not in str(error.value)
    # None follows lvis-api on the results as given: box areas with boxes, mask areas without.
    assert evaluate(gt, results[:50], iou_types=["segm"], segm_area=None).segm_area == "box"
    assert evaluate(gt, masks_only, iou_types=["segm"], segm_area=None).segm_area == "mask"


def test_an_unknown_convention_is_refused_in_one_line(lvis_set: tuple[Path, list[Any]]) -> None:
    ann, results = lvis_set
    with pytest.raises(EvaluationInputError, match="unknown segm_area 'bbox'") as error:
        evaluate(ann, results, segm_area="bbox")
    assert "\n" not in str(error.value)


# In-training evaluation: gol.inference.evaluate_model, which the engine calls after training (and gol-eval --run).


class _Replay(nn.Module):
    """A detector that returns fixed torchvision outputs; each image tensor holds its image id."""

    def __init__(self, outputs: dict[int, dict[str, Tensor]]) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        return [self.outputs[int(image[0, 0, 0])] for image in images]


def test_in_training_evaluation_takes_the_configured_convention(tmp_path: Path) -> None:
    gt, results = make_lvis_set(SyntheticSpec(num_images=5, num_categories=8, dets_per_image=(10, 40), seed=25))
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(gt))
    category_ids = sorted(c["id"] for c in gt["categories"])
    outputs = replay_outputs(gt, _boxes_apart_from_masks(results), category_ids, positive_width=False)
    data = SimpleNamespace(
        val=replay_split(gt), stats=SimpleNamespace(category_ids=category_ids), val_annotation_file=ann
    )
    # What the detector's outputs become (bbox and segmentation), as lvis-api receives them.
    image_ids = [image["id"] for image in gt["images"]]
    predicted = outputs_to_results([outputs[i] for i in image_ids], image_ids=image_ids, category_ids=category_ids)
    by_convention = {}
    for segm_area in ("box", "mask"):
        expected = _lvis_api(ann, predicted, with_boxes=segm_area == "box")
        for engine in ("hotcoco", "lvis"):
            conf = OmegaConf.structured(EvalConf(engine=engine, iou_types=["segm"], batch_size=2, segm_area=segm_area))
            metrics, _ = evaluate_model(_Replay(outputs), cast(Any, data), conf, device=torch.device("cpu"))
            assert metrics["eval"] == {"segm_area": segm_area}
            for key, value in metrics["segm"].items():
                reference = float(expected.results[key])
                assert value == (None if reference == -1 else pytest.approx(reference, abs=1e-9, rel=0)), key
        by_convention[segm_area] = metrics["segm"]
    assert _differ(by_convention["box"], by_convention["mask"])


# gol-eval on a results file: lvis-api's semantics on the file, unless --segm-area says otherwise.


@pytest.mark.parametrize(
    ("file_has_boxes", "flag", "expected_area"),
    [(True, None, "box"), (False, None, "mask"), (True, "mask", "mask"), (True, "box", "box")],
)
def test_gol_eval_follows_the_file_unless_told(
    lvis_set: tuple[Path, list[Any]], tmp_path: Path, file_has_boxes: bool, flag: str | None, expected_area: str
) -> None:
    ann, results = lvis_set
    given = results if file_has_boxes else [{k: v for k, v in r.items() if k != "bbox"} for r in results]
    dets, out = tmp_path / "dets.json", tmp_path / "metrics.json"
    dets.write_text(json.dumps(given))
    argv = ["--ann", str(ann), "--results", str(dets), "--out", str(out), "--iou-types", "segm"]
    assert main(argv + ([] if flag is None else ["--segm-area", flag])) == 0
    metrics = json.loads(out.read_text())
    assert metrics["eval"] == {"segm_area": expected_area}
    reference = _lvis_api(ann, results, with_boxes=expected_area == "box").results
    for key, value in metrics["segm"].items():
        assert value == (None if reference[key] == -1 else pytest.approx(float(reference[key]), abs=1e-9, rel=0))


def test_gol_eval_box_areas_need_boxes_in_the_file(
    lvis_set: tuple[Path, list[Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ann, results = lvis_set
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{k: v for k, v in r.items() if k != "bbox"} for r in results]))
    with caplog.at_level(logging.ERROR):
        status = main(
            ["--ann", str(ann), "--results", str(dets), "--out", str(tmp_path / "m.json"), "--segm-area", "box"]
        )
    assert status == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "carry no 'bbox'" in errors[0]
