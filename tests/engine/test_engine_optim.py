import pytest
import torch

from gol.config.schedule import ScheduleConf
from gol.optim import base_lr, build_optimizer, lr_factor, resolve_length


def test_warmup_is_linear_from_ratio_to_one():
    kw = dict(warmup_iters=500, warmup_ratio=0.001, steps=(), gamma=0.1)
    assert lr_factor(0, **kw) == pytest.approx(0.001)
    assert lr_factor(250, **kw) == pytest.approx(0.001 * 0.5 + 0.5)
    assert lr_factor(500, **kw) == 1.0
    assert lr_factor(10_000, **kw) == 1.0


def test_multistep_decay_applies_at_each_step():
    kw = dict(warmup_iters=0, warmup_ratio=0.001, steps=(8, 11), gamma=0.1)
    assert [lr_factor(i, **kw) for i in (7, 8, 10, 11, 12)] == pytest.approx([1, 0.1, 0.1, 0.01, 0.01])


def test_epoch_schedules_convert_to_iterations():
    one_x = ScheduleConf(epochs=12, steps=[8, 11])
    assert resolve_length(one_x, iters_per_epoch=100) == (1200, [800, 1100])
    two_x = ScheduleConf(epochs=24, steps=[16, 22])
    assert resolve_length(two_x, iters_per_epoch=10) == (240, [160, 220])
    assert resolve_length(ScheduleConf(max_iter=50, steps=[40]), iters_per_epoch=7) == (50, [40])


@pytest.mark.parametrize(
    "conf",
    [ScheduleConf(), ScheduleConf(epochs=12, max_iter=5), ScheduleConf(max_iter=10, steps=[8, 4])],
)
def test_ambiguous_schedules_are_refused(conf):
    with pytest.raises(ValueError, match="schedule"):
        resolve_length(conf, iters_per_epoch=10)


def test_linear_scaling_of_the_learning_rate():
    assert base_lr(ScheduleConf(lr=0.02, base_batch=16, ims_per_batch=4)) == pytest.approx(0.005)
    assert base_lr(ScheduleConf(lr=0.02, base_batch=16, ims_per_batch=4, scale_lr=False)) == 0.02


def test_scheduler_follows_lr_factor():
    model = torch.nn.Linear(2, 2)
    conf = ScheduleConf(max_iter=10, steps=[5], lr=0.1, base_batch=2, ims_per_batch=2, warmup_iters=2)
    optimizer, scheduler = build_optimizer(model, conf, steps=[5])
    seen = []
    for _ in range(7):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.1 * 0.001, 0.1 * (0.001 * 0.5 + 0.5), 0.1, 0.1, 0.1, 0.01, 0.01])
