"""Paper cells are the paper's cells: every cell composes to the released config's values (gol/released/,
rendered as docs/fidelity.md), a changed setting is a recorded deviation, and variant=improved is one switch."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from gol.config import CONF_DIR
from gol.released import ReleasedCell, find_cell, released_cells, render_markdown
from tests_support import compose_train

REPO = Path(CONF_DIR).parent
CELLS = released_cells()


def _resolved(cell: ReleasedCell, tmp_path: Path, *extra: str) -> dict:
    overrides = [f"experiment={cell.experiment}", *(f"{k}={v}" for k, v in cell.choices.items()), *extra]
    container = OmegaConf.to_container(compose_train(overrides, tmp_path), resolve=True)
    assert isinstance(container, dict)
    return container


def test_the_fidelity_document_is_rendered_from_the_released_table() -> None:
    assert (REPO / "docs" / "fidelity.md").read_text() == render_markdown(), (
        "docs/fidelity.md is stale: run `python -m gol.released > docs/fidelity.md`"
    )


def test_every_paper_cell_of_every_experiment_is_in_the_released_table() -> None:
    from tests.engine.test_engine_experiments import EXPERIMENTS, cells

    for name in EXPERIMENTS:
        if name in ("demo", "beyond"):  # beyond: methods after the paper; its GOL cell is the sota table's
            continue
        for cell in cells(name):
            choices = {k: v.lower() if v in ("True", "False") else v for k, v in (t.split("=", 1) for t in cell)}
            found = [c for c in CELLS if c.experiment == name and dict(c.choices) == choices]
            assert len(found) == 1, (
                f"experiment={name} {' '.join(cell)}: {len(found)} entries in gol/released/tables.py"
            )


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: f"{c.experiment}:{c.label}")
def test_a_paper_cell_composes_to_its_released_settings(cell: ReleasedCell, tmp_path: Path) -> None:
    resolved = _resolved(cell, tmp_path)
    assert cell.deviations(resolved) == [], f"{cell.config}: composed values differ from the released config"
    assert find_cell(cell.experiment, dict(cell.choices), resolved) == cell


def test_an_override_is_a_deviation_and_variant_improved_lists_its_switches(tmp_path: Path) -> None:
    cell = next(
        c for c in CELLS if c.experiment == "losses" and dict(c.choices) == {"loss": "eql", "activation": "sigmoid"}
    )
    assert cell.deviations(_resolved(cell, tmp_path, "detector.box_nms_thresh=0.4")) == ["detector.box_nms_thresh=0.4"]
    # the same value as the released one is no deviation
    assert cell.deviations(_resolved(cell, tmp_path, "detector.box_nms_thresh=0.5")) == []
    improved = cell.deviations(_resolved(cell, tmp_path, "variant=improved"))
    assert sorted(improved) == ["eval.segm_area=mask", "loss.numerics=stable", "schedule.amp=true"]
    sigmoid_ce = next(c for c in CELLS if c.experiment == "activations" and c.choices["activation"] == "sigmoid")
    assert "activation.scoring=own" in sigmoid_ce.deviations(_resolved(sigmoid_ce, tmp_path, "variant=improved"))


def test_training_from_scratch_is_a_deviation_of_a_paper_cell(tmp_path: Path) -> None:
    cell = next(c for c in CELLS if c.experiment == "sota" and c.choices["cell"] == "sota_gol_r50")
    assert cell.deviations(_resolved(cell, tmp_path, "detector.weights_backbone=null")) == [
        "detector.weights_backbone=null"
    ]


def test_the_x101_cells_start_from_the_released_backbone(tmp_path: Path) -> None:
    for activation in ("sigmoid", "softmax", "gumbel"):
        cell = next(c for c in CELLS if dict(c.choices) == {"activation": activation, "detector": "maskrcnn_x101_fpn"})
        resolved = _resolved(cell, tmp_path)
        assert Path(resolved["detector"]["weights_backbone"]).name == "resnext101_64x4d-ee2c6f71.pth"
        x101_mixed = activation != "gumbel"
        assert resolved["schedule"]["amp"] is x101_mixed
        assert resolved["schedule"]["warmup_iters"] == (1000 if x101_mixed else 500)
        assert resolved["schedule"]["ims_per_batch"] == (4 if activation == "softmax" else 16)


def test_the_run_record_names_the_released_config_and_the_deviations(tmp_path: Path) -> None:
    from gol.engine import RunContext, backbone_init, paper_fidelity
    from gol.record import Record

    cell = next(
        c for c in CELLS if c.experiment == "losses" and dict(c.choices) == {"loss": "eql", "activation": "gumbel"}
    )
    overrides = [f"experiment={cell.experiment}", "loss=eql", "activation=gumbel", "detector.box_nms_thresh=0.4"]
    cfg = compose_train(overrides, tmp_path)
    choices = {
        "experiment": "losses",
        "loss": "eql",
        "activation": "gumbel",
        "scale": "full",
        "detector": "maskrcnn_r50_fpn",
    }
    ctx = RunContext(run_dir=tmp_path, experiment="losses", choices=choices)
    released, deviations = paper_fidelity(cfg, ctx)
    assert released == cell.config and "eql_r50_4x4_2x_gumbel.py" in released
    assert deviations == ["detector.box_nms_thresh=0.4"]
    smoke = RunContext(run_dir=tmp_path, experiment="losses", choices={**choices, "scale": "smoke"})
    assert paper_fidelity(cfg, smoke) == (None, [])  # a smoke cell is never the paper's cell
    assert backbone_init(cfg.detector) == "imagenet:resnet50-0676ba61.pth"
    scratch = compose_train([*overrides, "detector.weights_backbone=null"], tmp_path)
    assert backbone_init(scratch.detector) == "scratch"
    kept = Record.from_json(Record(deviations=deviations, released_config=released, backbone_init="scratch").to_json())
    assert (kept.deviations, kept.released_config, kept.backbone_init) == (deviations, released, "scratch")
