"""``calibration=fracal``: FRACAL's statistics and scores against a transcription of the official code
(tests/evaluation/fracal_official.py), their properties, the config group, and the user paths (a smoke cell trained
with it; ``gol-eval --run DIR calibration=fracal`` on a finished run)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fracal_official import (
    official_base10_frequency,
    official_box_statistics,
    official_fracal_scores,
    official_fracal_weights,
    official_fractal_dimensions,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from gol.activations import Gumbel, Sigmoid, Softmax
from gol.activations.calibration import PRIORS, Fracal, fracal_scores
from gol.config import CONF_DIR
from gol.config.calibration import OPTIONS, calibration_config
from gol.data.fractal import STATS_FILE, FracalStats, fracal_stats, fractal_dimensions
from gol.validate import validate
from tests_support import compose_train, run_train, user_env

# -- a random LVIS-like training split -------------------------------------------------------------------------


def random_split(seed: int, *, k: int = 6, n_images: int = 40) -> tuple[list[dict], list[dict]]:
    """Images (some without annotations) and boxes of K classes: uniform, clustered, on a line, and rare ones."""
    rng = np.random.default_rng(seed)
    images = [
        {"id": 100 + i, "width": int(rng.integers(50, 640)), "height": int(rng.integers(50, 480))}
        for i in range(n_images)
    ]
    annotations = []
    for c in range(1, k + 1):
        count = int(rng.choice([1, 3, 5, 30, 120, 400]))
        for _ in range(count):
            im = images[int(rng.integers(0, n_images - 3))]  # the last three images stay empty
            w, h = im["width"], im["height"]
            if c % 3 == 0:  # clustered in one corner
                cx, cy = rng.uniform(0, 0.2) * w, rng.uniform(0, 0.2) * h
            elif c % 3 == 1:  # on a horizontal line
                cx, cy = rng.uniform(0, 1) * w, 0.5 * h
            else:  # anywhere
                cx, cy = rng.uniform(0, 1) * w, rng.uniform(0, 1) * h
            bw, bh = rng.uniform(0, 0.1) * w, rng.uniform(0, 0.1) * h
            annotations.append({"image_id": im["id"], "category_id": c, "bbox": [cx - bw / 2, cy - bh / 2, bw, bh]})
    return images, annotations


def gol_stats(images: list[dict], annotations: list[dict], k: int, grid: int) -> FracalStats:
    """gol's statistics of the same split (the arrays ``LVISDetection.fracal_stats`` reads from its table)."""
    index = {im["id"]: i for i, im in enumerate(images)}
    return fracal_stats(
        category_ids=list(range(1, k + 1)),
        boxes=np.array([a["bbox"] for a in annotations]),
        image_sizes=np.array(
            [(images[index[a["image_id"]]]["height"], images[index[a["image_id"]]]["width"]) for a in annotations]
        ),
        image_index=np.array([index[a["image_id"]] for a in annotations]),
        labels=np.array([a["category_id"] for a in annotations]),
        num_images=len(images),
        grid=grid,
        min_instances=4,
        source="random",
    )


# -- equal to the official code ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_fractal_dimensions_equal_the_official_box_counting(seed: int) -> None:
    k = 6
    images, annotations = random_split(seed, k=k)
    grid = 16 if seed else 64  # the official 64 once (its per-cell loops are slow), smaller grids for the others
    reference = official_fractal_dimensions(official_box_statistics(images, annotations), k, dims=grid)
    ours = gol_stats(images, annotations, k, grid).fractal_dimension
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-12)


def test_a_centre_on_a_cell_edge_falls_in_the_official_cell() -> None:
    """Edges are i * (1 / d), as the official masks compute them (0.3 * 10 is not 3 in floating point)."""
    edge = np.array([0.3, 0.1, 0.7, 0.5, 1 / 3, 0.9999999999999999, 1.0, 0.0])
    xs = np.concatenate([edge, edge])
    ys = np.concatenate([edge, edge[::-1]])
    gt = {"xmin": xs, "ymin": ys, "width": np.zeros_like(xs), "height": np.zeros_like(xs),
          "category": np.ones(xs.shape, dtype=int)}  # fmt: skip
    reference = official_fractal_dimensions(gt, 1, dims=10)
    ours = fractal_dimensions(np.stack([xs, ys], 1), np.ones(xs.shape, dtype=int), num_classes=1, grid=10,
                              min_instances=4)  # fmt: skip
    np.testing.assert_allclose(ours, reference, rtol=1e-12)


@pytest.mark.parametrize("activation", [Sigmoid(), Gumbel(), Softmax()], ids=lambda a: a.name)
@pytest.mark.parametrize("fractal_power", [2.0, 0.5])
def test_calibrated_scores_equal_the_official_head(activation, fractal_power: float) -> None:
    k = 6
    images, annotations = random_split(7, k=k)
    stats = gol_stats(images, annotations, k, grid=16)
    dims = official_fractal_dimensions(official_box_statistics(images, annotations), k, dims=16)
    binary = activation.is_binary
    wy = official_fracal_weights(official_base10_frequency(images, annotations, k), k, use_sigmoid=binary)
    logits = torch.randn(50, k + 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 4
    fracal = Fracal(stats=stats, fractal_power=fractal_power, grid=16, min_instances=4)
    ours = fracal.scores(logits, activation=activation, background=True)  # (R, K)
    if binary:  # the official sigmoid/Gumbel heads score the K foreground logits
        reference = official_fracal_scores(logits[:, 1:], wy, dims, fractal_power, True, activation.prob)
    else:  # the official softmax head has background last
        mmdet_order = torch.cat([logits[:, 1:], logits[:, :1]], dim=1)
        reference = official_fracal_scores(mmdet_order, wy, dims, fractal_power, False)[:, :k]
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(ours, activation.test_scores(logits, background=True))  # it does change the scores


def test_binary_scores_without_a_background_column_are_those_of_the_foreground_logits() -> None:
    images, annotations = random_split(1)
    fracal = Fracal(stats=gol_stats(images, annotations, 6, grid=8), grid=8, min_instances=4)
    logits = torch.randn(9, 7)
    with_bg = fracal.scores(logits, activation=Sigmoid(), background=True)
    without = fracal.scores(logits[:, 1:], activation=Sigmoid(), background=False)
    torch.testing.assert_close(with_bg, without)


# -- properties ----------------------------------------------------------------------------------------------------


def _dimension(points: np.ndarray, grid: int = 64) -> float:
    return float(fractal_dimensions(points, np.ones(len(points), dtype=int), num_classes=1, grid=grid,
                                    min_instances=4)[0])  # fmt: skip


def test_a_full_lattice_has_dimension_2_and_a_line_of_it_dimension_1() -> None:
    side = (np.arange(64) + 0.5) / 64
    xs, ys = np.meshgrid(side, side)
    assert _dimension(np.stack([xs.ravel(), ys.ravel()], 1)) == pytest.approx(2.0, abs=1e-12)
    assert _dimension(np.stack([side, np.full(64, 0.37)], 1)) == pytest.approx(1.0, abs=1e-12)  # horizontal
    assert _dimension(np.stack([side, side], 1)) == pytest.approx(1.0, abs=1e-12)  # diagonal
    assert _dimension(np.full((50, 2), 0.42)) == 1.0  # one place: slope 0, counted as 1 (box_dim)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(3000, 20000))
def test_uniform_points_fill_the_plane(seed: int, n: int) -> None:
    points = np.random.default_rng(seed).random((n, 2))
    assert 1.85 <= _dimension(points) <= 2.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(200, 5000), slope=st.floats(-1, 1), offset=st.floats(0.3, 0.7))
def test_points_on_a_line_have_dimension_about_1(seed: int, n: int, slope: float, offset: float) -> None:
    x = np.random.default_rng(seed).random(n) * 0.4 + 0.3  # (n,) within the square for any slope in [-1, 1]
    assert 1.0 <= _dimension(np.stack([x, offset + slope * (x - 0.5)], 1)) <= 1.15


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_dimensions_follow_their_class_and_ignore_the_annotation_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.random((300, 2))
    labels = rng.integers(1, 5, 300)
    dims = fractal_dimensions(points, labels, num_classes=4, grid=16, min_instances=4)
    order = rng.permutation(300)
    relabel = np.array([0, 3, 1, 4, 2])  # label l -> relabel[l]
    moved = fractal_dimensions(points[order], relabel[labels[order]], num_classes=4, grid=16, min_instances=4)
    np.testing.assert_allclose(moved[relabel[1:] - 1], dims, rtol=1e-12)
    assert ((dims >= 1) & (dims <= 2)).all()


def _stats(image_count, dims) -> FracalStats:
    k = len(dims)
    return FracalStats(category_ids=tuple(range(1, k + 1)), image_count=tuple(image_count), num_images=100,
                       fractal_dimension=tuple(dims), grid=64, min_instances=4, source="test")  # fmt: skip


counts_and_dims = st.integers(2, 8).flatmap(
    lambda k: st.tuples(
        st.lists(st.integers(1, 100), min_size=k, max_size=k), st.lists(st.floats(1, 2), min_size=k, max_size=k)
    )
)


@settings(max_examples=40, deadline=None)
@given(cd=counts_and_dims, seed=st.integers(0, 2**31))
def test_with_strength_0_the_softmax_scores_are_the_activations(cd, seed: int) -> None:
    """prior=none, fractal_power=0: no offset, the activation's own scores; the binary product form is then p^2,
    which keeps every class's ranking."""
    counts, dims = cd
    k = len(dims)
    logits = torch.randn(20, k + 1, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 5
    fracal = Fracal(stats=_stats(counts, dims), prior="none", fractal_power=0.0, grid=64, min_instances=4)
    for activation in (Softmax(), Sigmoid(scoring="softmax")):
        torch.testing.assert_close(fracal.scores(logits, activation=activation, background=True),
                                   activation.test_scores(logits, background=True))  # fmt: skip
    for activation in (Sigmoid(), Gumbel()):
        own = activation.test_scores(logits, background=True)
        torch.testing.assert_close(fracal.scores(logits, activation=activation, background=True), own * own)


@settings(max_examples=40, deadline=None)
@given(cd=counts_and_dims, seed=st.integers(0, 2**31), prior=st.sampled_from(sorted(PRIORS)),
       power=st.floats(0, 4))  # fmt: skip
def test_scores_are_probabilities_and_rarer_classes_score_higher(cd, seed: int, prior: str, power: float) -> None:
    counts, dims = cd
    k = len(dims)
    logits = torch.randn(20, k + 1, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 5
    base = Fracal(stats=_stats(counts, dims), prior=prior, fractal_power=power, grid=64, min_instances=4)
    rarer = Fracal(stats=_stats([1, *counts[1:]], dims), prior=prior, fractal_power=power, grid=64, min_instances=4)
    for activation in (Softmax(), Sigmoid(), Gumbel()):
        s = base.scores(logits, activation=activation, background=True)
        assert s.shape == (20, k) and bool(((s >= 0) & (s <= 1)).all())
        if activation.kind == "softmax":
            assert bool((s.sum(dim=1) <= 1 + 1e-12).all())
        r = rarer.scores(logits, activation=activation, background=True)
        if prior != "none" and counts[0] > 1:  # class 1 made rarer scores higher (where it is not saturated)
            assert bool((r[:, 0] >= s[:, 0]).all()) and bool((r[:, 0] > s[:, 0]).any())


def test_offsets_are_finite_for_a_class_without_training_images() -> None:
    fracal = Fracal(stats=_stats([0, 5, 50], [1.0, 1.5, 2.0]), grid=64, min_instances=4)
    scores = fracal.scores(torch.randn(4, 4), activation=Softmax(), background=True)
    assert bool(torch.isfinite(scores).all())


# -- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prior": "base3"}, "calibration.prior='base3' is unknown; use one of none, raw, base2, base10"),
        ({"fractal_power": -1.0}, "calibration.fractal_power must be finite and >= 0"),
        ({"fractal_power": math.inf}, "calibration.fractal_power must be finite and >= 0"),
        ({"grid": 1}, "calibration.grid must be an integer of at least 2"),
        ({"min_instances": 2}, "calibration.min_instances must be an integer of at least 4"),
    ],
)
def test_settings_out_of_range_are_one_line(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")) as error:
        Fracal.check_options(**{"prior": "base10", "fractal_power": 2.0, "grid": 64, "min_instances": 4, **options})
    assert "\n" not in str(error.value)


def test_a_split_without_boxes_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="calibration=fracal needs box annotations") as error:
        fracal_stats(category_ids=[1, 2], boxes=np.zeros((3, 4)), image_sizes=np.full((3, 2), 10),
                     image_index=np.arange(3), labels=np.array([1, 2, 1]), num_images=3, grid=64,
                     min_instances=4, source="empty.json")  # fmt: skip
    assert "\n" not in str(error.value) and "calibration=none" in str(error.value)


def test_statistics_of_other_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="counted with grid=64, min_instances=4, not calibration.grid=32"):
        Fracal(stats=_stats([1, 2], [1.0, 2.0]), grid=32, min_instances=4)


# -- the config group ---------------------------------------------------------------------------------------------


def test_every_calibration_option_has_its_yaml_and_composes(tmp_path: Path) -> None:
    assert sorted(OPTIONS) == sorted(p.stem for p in (Path(CONF_DIR) / "calibration").glob("*.yaml"))
    assert "_target_" not in compose_train([], tmp_path).calibration  # default: none
    cfg = compose_train(["calibration=fracal", "calibration.fractal_power=1"], tmp_path)
    assert cfg.calibration.fractal_power == 1.0 and cfg.calibration.prior == "base10"
    assert OmegaConf.to_container(calibration_config("fracal", ["fractal_power=1"])) == OmegaConf.to_container(
        cfg.calibration
    )
    with pytest.raises(ValueError, match="Key 'prio' not in 'FracalConf'"):
        calibration_config("fracal", ["prio=none"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["calibration=fracal", "calibration.fractal_power=-2"], "calibration.fractal_power must be finite and >= 0"),
        (["calibration=fracal", "loss=seesaw"], "SeesawLoss has its own test-time scores"),
    ],
)
def test_the_config_is_refused_before_anything_is_built(tmp_path: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate(compose_train(overrides, tmp_path))


def test_the_detector_scores_with_the_calibration_and_keeps_it_out_of_its_checkpoint(tmp_path: Path) -> None:
    from gol.build import build_components

    cfg = compose_train(["scale=smoke", "calibration=fracal", "activation=gumbel", "loss=droploss"], tmp_path)
    parts = build_components(cfg, run_dir=tmp_path)
    saved = json.loads((tmp_path / STATS_FILE).read_text())
    assert saved["category_ids"] == list(parts.data.stats.category_ids) and saved["grid"] == 64
    assert parts.loss.calibration is parts.calibration
    assert not any("calibration" in key for key in parts.model.state_dict())
    logits = torch.randn(5, parts.loss.num_logits)
    expected = fracal_scores(logits, activation=parts.activation, background=False,
                             image_frequency=parts.calibration.image_frequency,
                             fractal_dimension=parts.calibration.fractal_dimension, prior="base10",
                             fractal_power=2.0)  # fmt: skip
    torch.testing.assert_close(parts.loss.scores(logits), expected)
    # The loss itself is untouched: calibration is test-time only.
    plain = build_components(compose_train(["scale=smoke", "activation=gumbel", "loss=droploss"], tmp_path), parts.data)
    plain.loss.load_state_dict(parts.loss.state_dict())
    labels = torch.randint(0, parts.loss.num_classes + 1, (5,))
    torch.testing.assert_close(parts.loss(logits, labels), plain.loss(logits, labels))
    # A second build reads the saved statistics instead of counting again, even when the file says otherwise.
    saved["fractal_dimension"] = [1.25] * len(saved["fractal_dimension"])
    (tmp_path / STATS_FILE).write_text(json.dumps(saved))
    again = build_components(cfg, parts.data, run_dir=tmp_path)
    assert again.calibration is not None and bool((again.calibration.fractal_dimension == 1.25).all())


# -- the user paths -----------------------------------------------------------------------------------------------


def _gol_eval(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    gol_eval = Path(sys.executable).with_name("gol-eval")  # the console script, as typed
    return subprocess.run([str(gol_eval), *args], capture_output=True, text=True, cwd=cwd, env=user_env(cwd))


def _files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}


def _train(folder: Path, data_root: Path, *args: str) -> Path:
    folder.mkdir(parents=True)
    done = run_train(["scale=smoke", "logger=none", *args], cwd=folder, env={"GOL_DATA": str(data_root)})
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (folder / "outputs" / "runs").iterdir()
    return run_dir


def test_a_smoke_cell_trains_and_evaluates_with_fracal(tmp_path: Path, data_root: Path) -> None:
    run_dir = _train(tmp_path / "fracal", data_root, "calibration=fracal")
    assert json.loads((run_dir / "record.json").read_text())["state"] == "finished"
    stats = json.loads((run_dir / STATS_FILE).read_text())
    assert len(stats["fractal_dimension"]) == 12 and all(1 <= d <= 2 for d in stats["fractal_dimension"])
    assert "fracal" in (run_dir / "config.yaml").read_text().lower()
    # gol-eval on the run scores as training did, with the statistics saved beside it.
    done = _gol_eval("--run", str(run_dir), "--out", "again.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads((run_dir / "metrics.json").read_text())
    assert "FRACAL statistics from" in done.stderr


def test_gol_eval_calibrates_a_finished_run_into_a_record_of_its_own(tmp_path: Path, data_root: Path) -> None:
    run_dir = _train(tmp_path / "plain", data_root)
    before = _files(run_dir)
    done = _gol_eval("--run", str(run_dir), "calibration=fracal", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    record = run_dir / "evaluations" / "calibration=fracal"
    metrics = json.loads((record / "metrics.json").read_text())
    assert {"bbox", "segm"} <= set(metrics)
    assert metrics["eval"]["calibration"] == {"option": "fracal", "prior": "base10", "fractal_power": 2.0,
                                              "grid": 64, "min_instances": 4}  # fmt: skip
    assert (record / "metrics_per_category.json").is_file()
    # Nothing recorded is changed and nothing is added to the run's folder (an archived run may be read-only).
    assert _files(run_dir) == before
    # calibration=none is the run's own scoring: its metrics again, in another record.
    none = _gol_eval("--run", str(run_dir), "calibration=none", cwd=tmp_path)
    assert none.returncode == 0, none.stderr[-3000:]
    again = json.loads((run_dir / "evaluations" / "calibration=none" / "metrics.json").read_text())
    assert again.pop("eval")["calibration"] == {"option": "none"}
    recorded = json.loads((run_dir / "metrics.json").read_text())
    recorded.pop("eval")
    assert again == recorded
    # Bad input: one line, exit 2, nothing written.
    for args, message in (
        (["calibration=fracal", "calibration.fractal_power=-1"], "calibration.fractal_power must be finite and >= 0"),
        (["calibration=fracl"], "unknown calibration option 'fracl'; choose one of: none, fracal"),
        (["loss=ce"], "takes calibration=NAME and calibration.KEY=VALUE overrides"),
        (["calibration=fracal", "--out", str(run_dir / "metrics.json")], "would replace the run's own metrics.json"),
    ):
        bad = _gol_eval("--run", str(run_dir), *args, cwd=tmp_path)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr[-2000:]
        assert len([line for line in bad.stderr.splitlines() if "error" in line]) == 1
    assert _files(run_dir) == before


def test_a_cascade_scores_its_averaged_logits_with_the_calibration() -> None:
    from torchvision.models.detection.faster_rcnn import TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
    from torchvision.models.detection.rpn import AnchorGenerator, RPNHead
    from torchvision.ops import MultiScaleRoIAlign

    from gol.build import calibrate_model
    from gol.losses import CrossEntropyLoss
    from gol.models.assemble import DetectorOptions
    from gol.models.cascade import CascadeOptions, assemble_cascade
    from gol.models.tiny import TinyBackbone

    k = 5
    levels = ["0", "1", "2", "3"]

    def pool(size: int) -> MultiScaleRoIAlign:
        return MultiScaleRoIAlign(levels, output_size=size, sampling_ratio=2, canonical_scale=56, canonical_level=4)

    torch.manual_seed(0)
    model = assemble_cascade(
        backbone=TinyBackbone(stage_channels=(8, 16, 24, 32), convs_per_stage=1, fpn_channels=16),
        num_classes=k, cls_loss=CrossEntropyLoss(activation=Gumbel(), num_classes=k),
        options=DetectorOptions(train_sizes=(96,), test_size=96, max_size=128, box_batch_size_per_image=64,
                                rpn_post_nms_top_n_train=100, rpn_post_nms_top_n_test=50, box_detections_per_img=50,
                                box_loss="smooth_l1"),
        cascade=CascadeOptions(), anchor_generator=AnchorGenerator(((12,), (24,), (48,), (96,)), ((0.5, 1.0, 2.0),) * 4),
        rpn_head=RPNHead(16, 3), box_roi_pool=pool(7), box_head_factory=lambda: TwoMLPHead(16 * 7 * 7, 64),
        box_head_width=64, mask_roi_pool=pool(14), mask_head_factory=lambda: MaskRCNNHeads(16, [16], 1),
        mask_head_width=16, mask_dim_reduced=16,
    )  # fmt: skip
    keys = set(model.state_dict())
    fracal = Fracal(stats=_stats([50, 20, 8, 3, 1], [1.9, 1.7, 1.5, 1.2, 1.0]), grid=64, min_instances=4)
    calibrate_model(model, fracal)
    losses = [m for m in model.modules() if isinstance(m, CrossEntropyLoss)]
    assert len(losses) == 3 and all(loss.calibration is fracal for loss in losses)
    assert set(model.state_dict()) == keys  # old checkpoints still load whole
    logits = torch.randn(7, losses[-1].num_logits)
    expected = fracal.scores(logits, activation=losses[-1].activation, background=True)  # K + 1 logits
    torch.testing.assert_close(losses[-1].scores(logits), expected)
    model.eval()
    with torch.no_grad():
        (out,) = model([torch.rand(3, 96, 96)])
    assert out["scores"].shape[0] == out["labels"].shape[0]
