"""Every experiment file composes, cell by cell, at full and at smoke scale."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from analysis.experiments import SPECS
from gol.config import CONF_DIR
from launch.sweep import expected_cells_from_experiment
from tests_support import compose_train

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
# Every table `gol-tables` knows (analysis.experiments) is a sweep of experiments/, and the other way round.
TABLES = set(SPECS)


def cells(name: str) -> list[tuple[str, ...]]:
    return expected_cells_from_experiment(Path(CONF_DIR) / "experiment" / f"{name}.yaml")


def test_every_paper_table_has_an_experiment():
    assert set(EXPERIMENTS) == TABLES


@pytest.mark.parametrize("scale", ["full", "smoke"])
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_cell_composes_and_resolves(name, scale, tmp_path):
    expanded = cells(name)
    assert expanded, f"experiment {name} sweeps no cells"
    for cell in expanded:
        cfg = compose_train([f"experiment={name}", f"scale={scale}", *cell], tmp_path)
        OmegaConf.to_container(cfg, resolve=True)
        if scale == "smoke":
            assert cfg.dataset._target_ == "gol.data.build_embedded"
            assert cfg.schedule.max_iter is not None and cfg.schedule.epochs is None


def test_official_settings_reach_the_cells(tmp_path):
    # Resolve right after composing: the interpolations read the composing job's Hydra choices.
    resolved = [
        OmegaConf.to_container(
            compose_train(["experiment=losses", "loss=droploss", f"activation={a}"], tmp_path), resolve=True
        )
        for a in ("gumbel", "sigmoid")
    ]
    assert [r["detector"]["box_nms_thresh"] for r in resolved] == [0.3, 0.5]
    assert [r["activation"]["init_bias"] for r in resolved] == [-2.0, -6.9]
    gol_v05 = compose_train(["experiment=sota", "cell=sota_gol_r50_lvis_v05"], tmp_path)
    assert gol_v05.loss.lambda_ == 0.00177 and gol_v05.dataset.version == "v0.5"
    assert gol_v05.schedule.epochs == 24 and gol_v05.detector.normed_mask


def test_beyond_cells_train_aglu_with_the_stable_bce(tmp_path):
    """variant=paper's official (probability-space) numerics stay on the released methods' cells; the AGLU cells,
    which have no released counterpart, use the log-space BCE, whose gradient survives at the Gumbel end."""
    numerics = {
        cell: compose_train(["experiment=beyond", f"cell={cell}"], tmp_path).loss.numerics
        for cell in ("sota_gol_r50", "beyond_eqlv2", "beyond_aglu", "beyond_aglu_gol")
    }
    assert numerics == {"sota_gol_r50": "official", "beyond_eqlv2": "official", "beyond_aglu": "stable",
                        "beyond_aglu_gol": "stable"}  # fmt: skip


def test_unknown_experiment_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigCompositionException, match="Available options"):
        compose_train(["experiment=activation"], tmp_path)
