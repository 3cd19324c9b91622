"""Evaluation on every rank: each process predicts its shard of the val split, rank 0 gathers the detections and
computes the metrics, which equal one process's: the same detections in the same order (tied scores included),
with and without the per-category top K of ``eval.infer_topk``."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from replay_detector import ReplayDetector, replay_outputs, replay_split
from torch.utils.data import Dataset, Subset

from gol import distributed
from gol.config.train import EvalConf
from gol.data import DataFormatError
from gol.data.synthetic_lvis import SyntheticSpec, make_lvis_set
from gol.evaluation.detections import Detections
from gol.inference import evaluate_model, merge_shards, predict, predict_sharded, shard_indices
from tests_support import free_port, user_env

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CPU = torch.device("cpu")
# Scores with one decimal: ties within an image, a category and across images, which lvis-api's per-image cap and
# the per-category top K break by result order.
SPEC = SyntheticSpec(num_images=7, num_categories=6, dets_per_image=(50, 80), score_decimals=1, seed=43)
CONFS = {
    "standard": EvalConf(batch_size=2),
    "infer_topk": EvalConf(
        batch_size=2,
        protocols=["standard", "fixed", "pooled"],
        dets_per_category=12,
        infer_topk=12,
        infer_topk_per_image=1000,
    ),  # fmt: skip  (2 K x 6 < one image's)
}


def _same(a: Detections, b: Detections) -> bool:
    """Equal detections, in the same order."""
    return (
        np.array_equal(a.image_ids, b.image_ids)
        and np.array_equal(a.category_ids, b.category_ids)
        and np.array_equal(a.scores, b.scores)
        and np.array_equal(a.boxes, b.boxes)
        and a.segmentations == b.segmentations
    )


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    gt, results = make_lvis_set(SPEC)
    ann = tmp_path_factory.mktemp("sharded") / "gt.json"
    ann.write_text(json.dumps(gt))
    category_ids = sorted(c["id"] for c in gt["categories"])
    return SimpleNamespace(ann=ann, gt=gt, outputs=replay_outputs(gt, results, category_ids), category_ids=category_ids)


def _data(replay: SimpleNamespace) -> Any:
    return SimpleNamespace(val=replay_split(replay.gt), stats=SimpleNamespace(category_ids=replay.category_ids),
                           val_annotation_file=replay.ann)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(num_images=st.integers(0, 60), batch_size=st.integers(1, 6), world_size=st.integers(1, 5))
def test_shards_are_disjoint_cover_the_split_and_keep_one_process_batches(
    num_images: int, batch_size: int, world_size: int
) -> None:
    shards = [shard_indices(num_images, batch_size, distributed.World(rank, world_size)) for rank in range(world_size)]
    assert sorted(i for shard in shards for i in shard) == list(range(num_images))
    one_process = [list(range(s, min(s + batch_size, num_images))) for s in range(0, num_images, batch_size)]
    for rank, shard in enumerate(shards):
        assert shard == sorted(shard)
        own = [shard[s : s + batch_size] for s in range(0, len(shard), batch_size)]
        assert own == one_process[rank::world_size]  # the same batches as one process, every world_size-th


@settings(max_examples=25, deadline=None)
@given(world_size=st.integers(1, 4), batch_size=st.integers(1, 3), topk=st.sampled_from([None, 1, 5, 12, 40]))
def test_merged_shards_are_the_detections_of_one_process(
    replay: SimpleNamespace, world_size: int, batch_size: int, topk: int | None
) -> None:
    """The shards predicted one by one here (a shard's detections carry their images' dataset positions)."""
    split = replay_split(replay.gt)
    position_of = {int(target["image_id"]): i for i, (_, target) in enumerate(split)}
    common = dict(category_ids=tuple(replay.category_ids), batch_size=batch_size, device=CPU, per_image_cap=1000,
                  topk_per_category=topk)  # fmt: skip
    model = ReplayDetector(replay.outputs, cap=20)
    shards = []
    for rank in range(world_size):
        shard = shard_indices(len(split), batch_size, distributed.World(rank, world_size))
        dets = predict(model, Subset(split, shard), **common)
        shards.append((dets, np.array([position_of[i] for i in dets.image_ids.tolist()], dtype=np.int64)))
    one = predict(model, split, **common)
    merged = merge_shards(shards, topk_per_category=topk)
    assert _same(merged, one)
    if topk is not None:
        assert np.bincount(merged.category_ids).max() <= topk


def _evaluation_worker(rank: int, port: int, replay: SimpleNamespace, out: Path, chunk: int) -> None:
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    multiprocessing.set_start_method("fork", force=True)  # loader workers as gol-train's (spawned ones take seconds)
    distributed.GATHER_CHUNK_BYTES = chunk  # several rounds per gather
    world = distributed.init("cpu")
    try:
        found = {}
        for name, conf in CONFS.items():
            model = ReplayDetector(replay.outputs, cap=20)
            structured = OmegaConf.structured(conf)
            evaluated = evaluate_model(model, _data(replay), structured, device=CPU, world=world, num_workers=1)
            topk = conf.infer_topk
            dets = predict_sharded(
                model, replay_split(replay.gt), world=world, category_ids=tuple(replay.category_ids),
                batch_size=conf.batch_size, device=CPU, per_image_cap=None if topk is None else 1000,
                topk_per_category=topk,
            )  # fmt: skip
            assert (evaluated is None) == (dets is None) == (rank != 0)
            found[name] = (evaluated, dets)
        if world.is_main:
            out.write_bytes(pickle.dumps(found))
        distributed.wait_for_main(world)
    finally:
        distributed.shutdown(world)


@pytest.mark.timeout(300)
def test_two_gloo_processes_evaluate_as_one_process(replay: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "rank0.pkl"
    mp.start_processes(_evaluation_worker, args=(free_port(), replay, out, 4096), nprocs=2, join=True,
                       start_method="spawn")  # fmt: skip
    found = pickle.loads(out.read_bytes())
    for name, conf in CONFS.items():
        (metrics, per_category), dets = found[name]
        model = ReplayDetector(replay.outputs, cap=20)
        structured = OmegaConf.structured(conf)
        one = evaluate_model(model, _data(replay), structured, device=CPU)
        assert one is not None
        assert metrics == one[0], name
        assert per_category == one[1], name
        topk = conf.infer_topk
        single = predict(model, replay_split(replay.gt), category_ids=tuple(replay.category_ids),
                         batch_size=conf.batch_size, device=CPU, per_image_cap=None if topk is None else 1000,
                         topk_per_category=topk)  # fmt: skip
        assert _same(dets, single), name
        assert metrics["bbox"]["AP"] > 0 and metrics["segm"]["AP"] > 0  # a real evaluation, not zeros alike
    assert found["infer_topk"][0][0]["eval"]["infer_topk"] == 12


def _gather_worker(rank: int, port: int, out: Path) -> None:
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="3", RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    distributed.GATHER_CHUNK_BYTES = 1000
    world = distributed.init("cpu")
    try:
        # Of different sizes: one round, several rounds, and rank 0's own value, which it keeps as it is.
        value = {"rank": rank, "payload": bytes(range(256)) * [1, 37, 3][rank]}
        gathered = distributed.gather_to_main(value, world)
        if world.is_main:
            assert gathered is not None and gathered[0] is value
            out.write_bytes(pickle.dumps(gathered))
        else:
            assert gathered is None
    finally:
        distributed.shutdown(world)


@pytest.mark.timeout(120)
def test_gather_to_main_brings_every_value_to_rank_zero_in_rank_order(tmp_path: Path) -> None:
    out = tmp_path / "gathered.pkl"
    mp.start_processes(_gather_worker, args=(free_port(), out), nprocs=3, join=True, start_method="spawn")
    assert pickle.loads(out.read_bytes()) == [
        {"rank": rank, "payload": bytes(range(256)) * [1, 37, 3][rank]} for rank in range(3)
    ]
    assert distributed.gather_to_main("alone", distributed.World()) == ["alone"]


class _Damaged(Dataset):
    """Two images; the second one's file cannot be read."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> Any:
        if i == 1:
            raise DataFormatError("cannot decode image file val2017/1.png (truncated)")
        return torch.zeros(3, 4, 4), {"image_id": torch.tensor(0)}


def test_an_image_that_fails_in_a_loader_worker_fails_inference_with_its_own_error() -> None:
    model = ReplayDetector({0: {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
                                "scores": torch.zeros(0), "masks": torch.zeros(0, 1, 4, 4)}}, cap=20)  # fmt: skip
    with pytest.raises(DataFormatError, match=r"^cannot decode image file val2017/1\.png \(truncated\)$"):
        predict(model, _Damaged(), category_ids=(1,), batch_size=1, device=CPU, num_workers=1)


@pytest.mark.timeout(300)
def test_a_two_process_training_run_records_the_metrics_of_one_process(tmp_path: Path, data_root: Path) -> None:
    """``torchrun`` with two gloo processes: each predicts half the val split, rank 0 records the metrics, and
    ``gol-eval --run`` in one process reproduces them from the run's checkpoint."""
    env = user_env(tmp_path, GOL_DATA=str(data_root))
    run_dir = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    trained = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "gol.train", "scale=smoke", "logger=none",
         "threads=1", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    assert "detections of 16 images from 2 processes" in log
    record = json.loads((run_dir / "record.json").read_text())
    assert record["state"] == "finished" and record["world_size"] == 2
    gol_eval = Path(sys.executable).with_name("gol-eval")
    again = subprocess.run([str(gol_eval), "--run", str(run_dir), "--out", str(tmp_path / "again.json")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280, check=False)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads((run_dir / "metrics.json").read_text())
    assert json.loads((tmp_path / "again_per_category.json").read_text()) == json.loads(
        (run_dir / "per_category.json").read_text()
    )
    # The same detections: gol-eval's evaluation (one process) names as many as the run's (two).
    counted = [line.split("engine, ")[1].split(" detections")[0] for line in log.splitlines() if "engine, " in line]
    assert len(counted) == 1 and f"engine, {counted[0]} detections" in again.stderr
