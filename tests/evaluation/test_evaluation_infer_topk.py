"""``eval.infer_topk``: inference lifts the per-image cap and keeps the top K detections of each category over the
split (large-vocab-devil's infer_topk), so AP-fixed sees the detections it is defined on."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from gol.config.train import EvalConf
from gol.data.synthetic_lvis import SyntheticSpec, make_lvis_set
from gol.evaluation.prepare import top_per_category
from gol.inference import evaluate_model, predict

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class _Replay(nn.Module):
    """A detector replaying fixed outputs (each image tensor holds its id), cut like torchvision's RoI heads to
    the best ``roi_heads.detections_per_img`` per image."""

    def __init__(self, outputs: dict[int, dict[str, Tensor]], cap: int) -> None:
        super().__init__()
        self.outputs = outputs
        self.roi_heads = SimpleNamespace(detections_per_img=cap)
        self.caps_seen: list[int] = []

    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        cap = self.roi_heads.detections_per_img
        self.caps_seen.append(cap)
        out = []
        for image in images:
            o = self.outputs[int(image[0, 0, 0])]
            keep = torch.argsort(o["scores"], descending=True, stable=True)[:cap]
            out.append({k: v[keep] for k, v in o.items()})
        return out


@pytest.fixture(scope="module")
def replay_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[int, Any], list[int]]:
    gt, results = make_lvis_set(SyntheticSpec(num_images=6, num_categories=6, dets_per_image=(50, 80), seed=41))
    ann = tmp_path_factory.mktemp("topk") / "gt.json"
    ann.write_text(json.dumps(gt))
    category_ids = sorted(c["id"] for c in gt["categories"])
    label = {c: i + 1 for i, c in enumerate(category_ids)}
    outputs = {}
    for image in gt["images"]:
        mine = [r for r in results if r["image_id"] == image["id"] and r["bbox"][2] > 0]
        boxes = torch.tensor([r["bbox"] for r in mine], dtype=torch.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        masks = np.stack([mask_utils.decode(r["segmentation"]) for r in mine])
        outputs[image["id"]] = {
            "boxes": boxes,
            "labels": torch.tensor([label[r["category_id"]] for r in mine], dtype=torch.int64),
            "scores": torch.tensor([r["score"] for r in mine], dtype=torch.float64),
            "masks": torch.from_numpy(masks.astype(np.float32))[:, None],
        }
    return ann, gt, outputs, category_ids


def _val(gt: dict[str, Any]) -> list[Any]:
    return [(torch.full((3, 4, 4), float(im["id"])), {"image_id": torch.tensor(im["id"])}) for im in gt["images"]]


def test_predict_lifts_the_cap_and_keeps_the_top_k_of_each_category(replay_set: Any) -> None:
    _, gt, outputs, category_ids = replay_set
    model = _Replay(outputs, cap=20)
    common = dict(category_ids=tuple(category_ids), batch_size=2, device=torch.device("cpu"))
    capped = predict(model, _val(gt), **common)
    assert np.bincount(np.unique(capped.image_ids, return_inverse=True)[1]).max() == 20  # the detector's cap
    everything = predict(model, _val(gt), **common, per_image_cap=1000)
    assert len(everything) == sum(len(o["scores"]) for o in outputs.values())
    k = 15
    top = predict(model, _val(gt), **common, per_image_cap=1000, topk_per_category=k)
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
    predict(_Replay(outputs, cap=20), _val(gt), category_ids=tuple(category_ids), batch_size=2,
            device=torch.device("cpu"), heartbeat=lambda: beats.append(1))  # fmt: skip
    assert len(beats) == (len(gt["images"]) + 1) // 2


def test_in_training_ap_fixed_with_infer_topk(replay_set: Any) -> None:
    ann, gt, outputs, category_ids = replay_set
    data = SimpleNamespace(val=_val(gt), stats=SimpleNamespace(category_ids=category_ids), val_annotation_file=ann)
    conf = OmegaConf.structured(
        EvalConf(
            iou_types=["bbox"], batch_size=2, protocols=["standard", "fixed", "pooled"], dets_per_category=25,
            infer_topk=25, infer_topk_per_image=1000,
        )
    )  # fmt: skip
    metrics, _ = evaluate_model(_Replay(outputs, cap=20), cast(Any, data), conf, device=torch.device("cpu"))
    assert set(metrics) == {"bbox", "bbox_fixed", "bbox_pooled", "eval"}
    assert metrics["eval"] == {"protocols": ["standard", "fixed", "pooled"], "dets_per_category": 25, "infer_topk": 25}
    assert metrics["bbox_fixed"]["AP"] is not None and metrics["bbox_pooled"]["AP"] is not None
    # With infer_topk, the standard protocol sees the uncapped set, still capped at 300 per image by LVIS AP.
    assert metrics["bbox"]["AP"] is not None
