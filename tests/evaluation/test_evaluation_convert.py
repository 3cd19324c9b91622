"""Torchvision outputs -> LVIS results: boxes, category ids, RLE masks, and the JSON round trip."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from gol.evaluation import (
    Detections,
    EvaluationInputError,
    detections_from_output,
    outputs_to_results,
)

CATEGORY_IDS = [3, 7, 12, 40]  # label k -> CATEGORY_IDS[k - 1]


def _output(n: int, h: int = 24, w: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w - 8.0, h - 8.0])
    wh = torch.rand(n, 2, generator=g) * 7 + 0.5
    return {
        "boxes": torch.cat([xy, xy + wh], dim=1),  # (N, 4) xyxy
        "labels": torch.randint(1, len(CATEGORY_IDS) + 1, (n,), generator=g),
        "scores": torch.rand(n, generator=g),
        "masks": torch.rand(n, 1, h, w, generator=g),  # probabilities
    }


def _decode(rle: dict) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(
            {"size": rle["size"], "counts": rle["counts"].encode() if isinstance(rle["counts"], str) else rle["counts"]}
        )


def test_outputs_to_results_fields() -> None:
    outputs = [_output(5, seed=1), _output(3, seed=2)]
    results = outputs_to_results(outputs, image_ids=[11, 22], category_ids=CATEGORY_IDS)
    assert [r["image_id"] for r in results] == [11] * 5 + [22] * 3
    for r, (out, i) in zip(results, [(outputs[0], i) for i in range(5)] + [(outputs[1], i) for i in range(3)]):
        x1, y1, x2, y2 = out["boxes"][i].double().tolist()
        assert r["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=1e-12)
        assert r["category_id"] == CATEGORY_IDS[int(out["labels"][i]) - 1]
        assert r["score"] == float(out["scores"][i])
        assert isinstance(r["segmentation"]["counts"], str) and r["segmentation"]["size"] == [24, 32]
        np.testing.assert_array_equal(_decode(r["segmentation"]), (out["masks"][i, 0] > 0.5).numpy())
    json.dumps(results)  # JSON-ready


def test_json_round_trip_keeps_every_number() -> None:
    dets = Detections.concatenate(
        [detections_from_output(_output(6, seed=s), image_id=s, category_ids=CATEGORY_IDS) for s in range(3)]
    )
    back = Detections.from_results(json.loads(json.dumps(dets.to_results())))
    for name in ("image_ids", "category_ids", "scores", "boxes"):
        np.testing.assert_array_equal(getattr(back, name), getattr(dets, name))
    assert [m["counts"] for m in back.segmentations] == [m["counts"].decode() for m in dets.segmentations]
    assert back.to_results() == dets.to_results()


def test_no_detections_and_no_masks() -> None:
    empty = {k: v[:0] for k, v in _output(2).items()}
    assert outputs_to_results([empty], image_ids=[1], category_ids=CATEGORY_IDS) == []
    boxes_only = {k: v for k, v in _output(2).items() if k != "masks"}
    results = outputs_to_results([boxes_only], image_ids=[1], category_ids=CATEGORY_IDS)
    assert len(results) == 2 and all("segmentation" not in r for r in results)


def test_bad_outputs() -> None:
    out = _output(3)
    out["labels"][0] = len(CATEGORY_IDS) + 1
    with pytest.raises(EvaluationInputError, match="labels outside 1..4"):
        detections_from_output(out, image_id=1, category_ids=CATEGORY_IDS)
    with pytest.raises(EvaluationInputError, match="one id per output"):
        outputs_to_results([_output(1)], image_ids=[1, 2], category_ids=CATEGORY_IDS)
    bad_masks = _output(2)
    bad_masks["masks"] = bad_masks["masks"][:, 0]
    with pytest.raises(EvaluationInputError, match=r"\(N, 1, H, W\)"):
        detections_from_output(bad_masks, image_id=1, category_ids=CATEGORY_IDS)
