"""Every option of every config group composes; misspelt keys and unknown options fail at composition."""

from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from gol.config import CONF_DIR
from gol.distributed import check_device_here, check_device_name
from gol.losses import VALID_PAIRS
from gol.validate import check_schedule, validate
from tests_support import compose_train

GROUPS = ("activation", "loss", "detector", "dataset", "sampler", "schedule", "logger", "paths")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_resolves(group, option, tmp_path):
    overrides = [f"{group}={option}"]
    if group == "loss":
        overrides.append(f"activation={VALID_PAIRS[option][0]}")  # an activation the loss takes
    cfg = compose_train(overrides, tmp_path)
    container = OmegaConf.to_container(cfg, resolve=True)
    assert container[group] is not None


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group}/ has no options"


def test_misspelt_key_fails_when_composed(tmp_path):
    with pytest.raises(ConfigCompositionException, match="lamda"):
        compose_train(["loss=eql", "activation=gumbel", "loss.lamda=0.1"], tmp_path)
    with pytest.raises(ConfigCompositionException, match="max_itr"):
        compose_train(["schedule.max_itr=3"], tmp_path)


def test_unknown_option_lists_the_available_ones(tmp_path):
    with pytest.raises(ConfigCompositionException, match="Available options"):
        compose_train(["loss=focal"], tmp_path)


@pytest.mark.parametrize("schedule", ["1x", "2x", "demo", "smoke"])
def test_every_schedule_passes_validation(schedule, tmp_path):
    check_schedule(compose_train([f"schedule={schedule}"], tmp_path).schedule)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["schedule.lr=0"], "schedule.lr must be positive, got 0"),
        (["schedule.gamma=-0.1"], "schedule.gamma must be positive"),
        (["schedule.grad_clip=0"], "schedule.grad_clip must be positive"),
        (["schedule.warmup_ratio=2"], "in (0, 1]"),
        (["schedule.momentum=1.0"], "schedule.momentum must be in [0, 1)"),
        (["schedule.weight_decay=-1e-4"], "schedule.weight_decay >= 0"),
        (["schedule.ims_per_batch=0"], "schedule.ims_per_batch must be at least 1, got 0"),
        (["schedule.log_period=0"], "schedule.log_period must be at least 1"),
        (["schedule.warmup_iters=-1"], "schedule.warmup_iters must be at least 0"),
        (["schedule=1x", "schedule.epochs=0"], "schedule.epochs must be at least 1"),
        (["schedule=1x", "schedule.steps=[11,8]"], "must be increasing"),
        (["schedule=1x", "schedule.steps=[8,12]"], "0 < step < epochs=12"),
        (["schedule=demo", "schedule.max_iter=null"], "exactly one of `epochs`"),
    ],
)
def test_schedule_values_out_of_range_are_named(overrides, message, tmp_path):
    cfg = compose_train(overrides, tmp_path)
    with pytest.raises(ValueError) as error:
        check_schedule(cfg.schedule)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(("name", "message"), [("tpu", "is not a device"), ("mps", "gol trains on cpu or cuda")])
def test_device_names_are_checked_where_the_sweep_is_planned(name, message, tmp_path):
    cfg = compose_train([f"device={name}"], tmp_path)
    with pytest.raises(ValueError, match=message):
        validate(cfg)
    for fine in ("auto", "cpu", "cuda", "cuda:3"):  # a login node without GPUs may plan GPU cells
        check_device_name(fine)


def test_a_gpu_this_machine_lacks_is_refused_where_the_cell_runs():
    check_device_here("auto")
    check_device_here("cpu")
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU (cuda:0 without CUDA)
    with pytest.raises(ValueError, match=f"device='{missing}' but "):
        check_device_here(missing)


def test_eval_segm_area_is_box_or_mask(tmp_path):
    for good in ("box", "mask"):
        validate(compose_train([f"eval.segm_area={good}"], tmp_path))
    with pytest.raises(ValueError) as error:
        validate(compose_train(["eval.segm_area=bbox"], tmp_path))
    assert "eval.segm_area='bbox' is unknown; use box" in str(error.value) and "\n" not in str(error.value)


def test_eval_protocols_and_infer_topk_are_checked_in_one_line(tmp_path):
    validate(compose_train(["eval.protocols=[standard,fixed,pooled]", "eval.infer_topk=10000"], tmp_path))
    for bad, fragment in (
        ("eval.protocols=[fixed]", "must list standard"),
        ("eval.protocols=[standard,topk]", "must list standard"),
        ("eval.dets_per_category=0", "eval.dets_per_category must be at least 1"),
        ("eval.infer_topk=0", "eval.infer_topk must be null or at least 1"),
        ("eval.engine=fast", "eval.engine='fast' is unknown; use one of hotcoco, lvis"),
    ):
        with pytest.raises(ValueError) as error:
            validate(compose_train([bad], tmp_path))
        assert fragment in str(error.value) and "\n" not in str(error.value), bad


def test_eval_errors_need_hotcoco(tmp_path):
    validate(compose_train(["eval.errors=true"], tmp_path))
    with pytest.raises(ValueError) as error:
        validate(compose_train(["eval.errors=true", "eval.engine=lvis"], tmp_path))
    assert "keep eval.engine=hotcoco" in str(error.value) and "\n" not in str(error.value)
