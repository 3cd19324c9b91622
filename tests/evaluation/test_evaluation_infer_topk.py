"""``eval.infer_topk``: inference lifts the per-image cap and keeps the top K detections of each category over the
split (large-vocab-devil's infer_topk), so AP-fixed sees the detections it is defined on."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from replay_detector import ReplayDetector, replay_outputs, replay_split

from gol.config.train import EvalConf
from gol.data.synthetic_lvis import SyntheticSpec, make_lvis_set
from gol.evaluation.prepare import top_per_category
from gol.inference import evaluate_model, predict

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def replay_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[int, Any], list[int]]:
    gt, results = make_lvis_set(SyntheticSpec(num_images=6, num_categories=6, dets_per_image=(50, 80), seed=41))
    ann = tmp_path_factory.mktemp("topk") / "gt.json"
    ann.write_text(json.dumps(gt))
    category_ids = sorted(c["id"] for c in gt["categories"])
    return ann, gt, replay_outputs(gt, results, category_ids), category_ids


def test_predict_lifts_the_cap_and_keeps_the_top_k_of_each_category(replay_set: Any) -> None:
    _, gt, outputs, category_ids = replay_set
    model = ReplayDetector(outputs, cap=20)
    common = dict(category_ids=tuple(category_ids), batch_size=2, device=torch.device("cpu"))
    capped = predict(model, replay_split(gt), **common)
    assert np.bincount(np.unique(capped.image_ids, return_inverse=True)[1]).max() == 20  # the detector's cap
    everything = predict(model, replay_split(gt), **common, per_image_cap=1000)
    assert len(everything) == sum(len(o["scores"]) for o in outputs.values())
    k = 15
    top = predict(model, replay_split(gt), **common, per_image_cap=1000, topk_per_category=k)
    assert model.roi_heads.detections_per_img == 20  # restored after the pass
    assert set(model.caps_seen) == {20, 1000}
    assert np.bincount(top.category_ids).max() == k
    expected = everything.subset(top_per_category(everything.category_ids, everything.scores, k))
    assert sorted(zip(top.category_ids.tolist(), top.scores.tolist())) == sorted(
        zip(expected.category_ids.tolist(), expected.scores.tolist())
    )


def test_predict_beats_while_it_runs(replay_set: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's heartbeat (it updates the run's record): called through an hours-long inference, not only at
    its end, so another launch never takes the run for dead."""
    _, gt, outputs, category_ids = replay_set
    beats: list[int] = []
    monkeypatch.setattr("gol.inference.HEARTBEAT_S", 0.0)  # at every batch
    predict(ReplayDetector(outputs, cap=20), replay_split(gt), category_ids=tuple(category_ids), batch_size=2,
            device=torch.device("cpu"), heartbeat=lambda: beats.append(1))  # fmt: skip
    assert len(beats) == (len(gt["images"]) + 1) // 2


def test_in_training_ap_fixed_with_infer_topk(replay_set: Any) -> None:
    ann, gt, outputs, category_ids = replay_set
    data = SimpleNamespace(
        val=replay_split(gt), stats=SimpleNamespace(category_ids=category_ids), val_annotation_file=ann
    )
    conf = OmegaConf.structured(
        EvalConf(
            iou_types=["bbox"], batch_size=2, protocols=["standard", "fixed", "pooled"], dets_per_category=25,
            infer_topk=25, infer_topk_per_image=1000,
        )
    )  # fmt: skip
    metrics, _ = evaluate_model(ReplayDetector(outputs, cap=20), cast(Any, data), conf, device=torch.device("cpu"))
    assert set(metrics) == {"bbox", "bbox_fixed", "bbox_pooled", "eval"}
    assert metrics["eval"] == {"protocols": ["standard", "fixed", "pooled"], "dets_per_category": 25, "infer_topk": 25}
    assert metrics["bbox_fixed"]["AP"] is not None and metrics["bbox_pooled"]["AP"] is not None
    # With infer_topk, the standard protocol sees the uncapped set, still capped at 300 per image by LVIS AP.
    assert metrics["bbox"]["AP"] is not None
