"""EQLv2 (loss=eqlv2): equal to the official implementation over several steps, its statistics (checkpointed,
per cascade stage, all-reduced), the Gumbel pairing's gradient, the softmax refusal and a smoke cell."""

from __future__ import annotations

import json
import math
from functools import partial

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.autograd import gradcheck

from gol import checkpoint
from gol.activations import Gumbel, Probit, Sigmoid, Softmax, get_activation
from gol.activations.calibration import Fracal
from gol.activations.gumbel_fused import gumbel_binary_cross_entropy_sum
from gol.data.fractal import FracalStats
from gol.losses import EQLv2Loss, InvalidPairError, check_pair, eqlv2_gradient_sums, eqlv2_loss, eqlv2_weights
from gol.models.cascade import stage_losses
from tests_support import free_port, run_train

K = 5


# ---------------------------------------------------------------------------------------------------------------
# Transcription of the official EQLv2: tztztztztz/eqlv2, mmdet/models/losses/eqlv2.py at commit
# 907fad905b0cac6372f7ec4035f48ef3d0801098 (mmdetection 3.x's mmdet/models/losses/eqlv2_loss.py has the same maths
# without the all-reduce). Left out: the registry, the logger and the unused arguments; the all-reduce runs only under
# an initialised process group (the official one always calls it). Official layout: classes 0..K-1, background
# (objectness) logit last, label K = background.
# ---------------------------------------------------------------------------------------------------------------
class OfficialEQLv2(nn.Module):
    def __init__(self, num_classes, gamma=12, mu=0.8, alpha=4.0, test_with_obj=True):
        super().__init__()
        self.num_classes = num_classes
        self.gamma = gamma
        self.mu = mu
        self.alpha = alpha
        self.register_buffer("pos_grad", torch.zeros(self.num_classes))
        self.register_buffer("neg_grad", torch.zeros(self.num_classes))
        self.register_buffer("pos_neg", torch.ones(self.num_classes) * 100)
        self.test_with_obj = test_with_obj

        def _func(x, gamma, mu):
            return 1 / (1 + torch.exp(-gamma * (x - mu)))

        self.map_func = partial(_func, gamma=self.gamma, mu=self.mu)

    def forward(self, cls_score, label):
        self.n_i, self.n_c = cls_score.size()

        def expand_label(pred, gt_classes):
            target = pred.new_zeros(self.n_i, self.n_c)
            target[torch.arange(self.n_i), gt_classes] = 1
            return target

        target = expand_label(cls_score, label)
        pos_w, neg_w = self.get_weight(cls_score)
        weight = pos_w * target + neg_w * (1 - target)
        cls_loss = self.bce(cls_score, target)
        cls_loss = torch.sum(cls_loss * weight) / self.n_i
        self.collect_grad(cls_score.detach(), target.detach(), weight.detach())
        return cls_loss

    def bce(self, cls_score, target):
        return F.binary_cross_entropy_with_logits(cls_score, target, reduction="none")

    def logit_grad(self, cls_score, target):
        prob = torch.sigmoid(cls_score)
        return target * (prob - 1) + (1 - target) * prob

    def get_activation(self, cls_score):
        cls_score = torch.sigmoid(cls_score)
        n_i, _ = cls_score.size()
        bg_score = cls_score[:, -1].view(n_i, 1)
        if self.test_with_obj:
            cls_score[:, :-1] *= 1 - bg_score
        return cls_score

    def collect_grad(self, cls_score, target, weight):
        grad = self.logit_grad(cls_score, target)
        grad = torch.abs(grad)
        # do not collect grad for objectiveness branch [:-1]
        pos_grad = torch.sum(grad * target * weight, dim=0)[:-1]
        neg_grad = torch.sum(grad * (1 - target) * weight, dim=0)[:-1]
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(pos_grad)
            dist.all_reduce(neg_grad)
        self.pos_grad += pos_grad
        self.neg_grad += neg_grad
        self.pos_neg = self.pos_grad / (self.neg_grad + 1e-10)

    def get_weight(self, cls_score):
        neg_w = torch.cat([self.map_func(self.pos_neg), cls_score.new_ones(1)])
        pos_w = 1 + self.alpha * (1 - neg_w)
        neg_w = neg_w.view(1, -1).expand(self.n_i, self.n_c)
        pos_w = pos_w.view(1, -1).expand(self.n_i, self.n_c)
        return pos_w, neg_w


class GumbelEQLv2(OfficialEQLv2):
    """The official loop with the Gumbel BCE and its derivative in closed form (GOL paper eqs. 1-3) in place of the
    sigmoid's: what ``loss=eqlv2 activation=gumbel`` means."""

    def bce(self, q, y):
        t = torch.exp(-q)
        return y * t - (1 - y) * torch.log(-torch.expm1(-t))

    def logit_grad(self, q, y):
        t = torch.exp(-q)
        return -y * t + (1 - y) * t * torch.exp(-t) / -torch.expm1(-t)


def to_official(logits, labels):
    """gol's layout (background column 0, label 0) -> the official one (background column last, label K)."""
    k = logits.shape[1] - 1
    return torch.cat([logits[:, 1:], logits[:, :1]], dim=1), torch.where(labels == 0, k, labels - 1)


def _batch(rows, seed, *, dtype=torch.float32, scale=2.0, shift=-1.0):
    """Logits (rows, K + 1) and labels skewed towards class 1 (frequent) with class K rare or absent."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05, 0.0][: K + 1])  # label 0 background, label K never drawn
    labels = torch.multinomial(probs, rows, replacement=True, generator=g)
    logits = torch.randn(rows, K + 1, generator=g, dtype=dtype) * scale + shift
    return logits, labels


# ---------------------------------------------------------------------------------------------------------------
# Equal to the official implementation
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("act", "reference", "dtype", "numerics"),
    [
        ("sigmoid", OfficialEQLv2, torch.float32, "stable"),
        ("sigmoid", OfficialEQLv2, torch.float32, "official"),
        ("sigmoid", OfficialEQLv2, torch.float64, "stable"),
        ("gumbel", GumbelEQLv2, torch.float64, "stable"),
    ],
)
def test_matches_the_official_loss_over_steps(act, reference, dtype, numerics) -> None:
    """Value, gradient, statistics and scores over six steps, so that the weights move away from 1."""
    ours = EQLv2Loss(activation=get_activation(act), num_classes=K, numerics=numerics)
    theirs = reference(num_classes=K)
    if dtype == torch.float64:
        ours, theirs = ours.double(), theirs.double()
    for step in range(6):
        logits, labels = _batch(40, step, dtype=dtype)
        x = logits.clone().requires_grad_(True)
        xo, yo = to_official(logits, labels)
        xo.requires_grad_(True)
        value, expected = ours(x, labels), theirs(xo, yo)
        value.backward()
        expected.backward()
        torch.testing.assert_close(value, expected)
        torch.testing.assert_close(x.grad, torch.cat([xo.grad[:, -1:], xo.grad[:, :-1]], dim=1))
        torch.testing.assert_close(ours.pos_grad, theirs.pos_grad)
        torch.testing.assert_close(ours.neg_grad, theirs.neg_grad)
        torch.testing.assert_close(ours.pos_neg, theirs.pos_neg, rtol=1e-5, atol=0.0)
    pos_w, neg_w = ours.weights()
    assert neg_w[K] < 1e-3 and pos_w[K] > 1 + 3.9  # the class never seen as positive is damped
    assert neg_w[1] > 0.5  # the frequent class is not
    if act == "sigmoid":
        logits, labels = _batch(7, 99, dtype=dtype)
        torch.testing.assert_close(ours.scores(logits), theirs.get_activation(to_official(logits, labels)[0])[:, :K])


def test_scores_without_objectness_are_the_activation_of_the_class_columns() -> None:
    loss = EQLv2Loss(activation=Gumbel(), num_classes=K, score_objectness=False)
    logits, _ = _batch(9, 3)
    torch.testing.assert_close(loss.scores(logits), torch.exp(-torch.exp(-logits[:, 1:])))
    theirs = OfficialEQLv2(num_classes=K, test_with_obj=False)
    sigmoid = EQLv2Loss(activation=Sigmoid(), num_classes=K, score_objectness=False)
    torch.testing.assert_close(sigmoid.scores(logits), theirs.get_activation(to_official(logits, _)[0])[:, :K])


def test_fracal_calibrates_the_class_scores_and_keeps_the_objectness() -> None:
    """calibration=fracal with EQLv2: FRACAL's calibrated class scores (its binary form on the K class columns),
    times P(object) as EQLv2's own test scores; without objectness, FRACAL's scores alone."""
    stats = FracalStats(category_ids=tuple(range(1, K + 1)), image_count=(50, 30, 10, 3, 1), num_images=100,
                        fractal_dimension=(1.9, 1.7, 1.5, 1.2, 1.0), grid=64, min_instances=4, source="train.json")  # fmt: skip
    logits, _ = _batch(9, 4)
    for activation in (Sigmoid(), Gumbel()):
        fracal = Fracal(stats=stats, grid=64, min_instances=4)
        loss = EQLv2Loss(activation=activation, num_classes=K)
        plain = loss.scores(logits)
        loss.calibrate(fracal)
        calibrated = fracal.scores(logits, activation=activation, background=True)  # (R, K)
        objectness = 1.0 - activation.prob(logits[:, :1])
        torch.testing.assert_close(loss.scores(logits), calibrated * objectness)
        assert not torch.allclose(loss.scores(logits), plain)
        bare = EQLv2Loss(activation=activation, num_classes=K, score_objectness=False)
        bare.calibrate(fracal)
        torch.testing.assert_close(bare.scores(logits), calibrated)


def test_gumbel_statistics_are_the_gumbel_bce_gradient_not_eta_minus_y() -> None:
    """The Gumbel pairing collects |dBCE/dq| of the Gumbel BCE: exp(-q) for a positive, exp(-q) eta / (1 - eta)
    for a negative; the sigmoid's expression |eta - y| would give other statistics."""
    q = torch.tensor([[0.5, -1.0, 2.0, 0.0, -0.5, 1.5]], dtype=torch.float64)
    label = torch.tensor([2])  # positive in column 2
    ones = torch.ones(K + 1, dtype=torch.float64)
    pos, neg = eqlv2_gradient_sums(q, label, activation=Gumbel(), pos_weight=ones, neg_weight=ones)
    t = torch.exp(-q[0, 1:])
    eta = torch.exp(-t)
    torch.testing.assert_close(pos, torch.tensor([0.0, t[1].item(), 0.0, 0.0, 0.0], dtype=torch.float64))
    expected_neg = t * eta / (1 - eta)
    expected_neg[1] = 0.0
    torch.testing.assert_close(neg, expected_neg)
    assert not torch.allclose(neg, torch.where(torch.arange(K) == 1, 0.0, eta))


# ---------------------------------------------------------------------------------------------------------------
# Numerics
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", [Sigmoid(), Gumbel(), Probit()])
@pytest.mark.parametrize("numerics", ["stable", "official"])
def test_gradcheck_float64(act, numerics) -> None:
    g = torch.Generator().manual_seed(4)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 0, 2])
    ratio = torch.rand(K, generator=g, dtype=torch.float64) * 2  # weights far from 1 on both sides of mu
    pos_w, neg_w = eqlv2_weights(ratio, gamma=12.0, mu=0.8, alpha=4.0)
    # official numerics clamp the Gumbel/probit logits: keep inside the clamps, away from their kinks
    x = (torch.rand(8, K + 1, generator=g, dtype=torch.float64) * 5 - 2.5).requires_grad_(True)

    def fn(logits):
        return eqlv2_loss(logits, labels, activation=act, pos_weight=pos_w, neg_weight=neg_w, numerics=numerics)

    assert gradcheck(fn, (x,), eps=1e-6, atol=1e-7)
    module = EQLv2Loss(activation=act, num_classes=K, numerics=numerics).double().eval()
    module.pos_neg.copy_(ratio)
    assert gradcheck(lambda logits: module(logits, labels), (x,), eps=1e-6, atol=1e-7)


def test_gumbel_elementwise_bce_is_the_fused_sum_at_every_logit() -> None:
    """EQLv2 weights each element, so it uses the Gumbel BCE per element: it must equal the fused sum, finite
    (value and gradient) where -log eta = exp(-q) overflows float32."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(64, K + 1, generator=g) * 30
    logits[:4] = torch.tensor([-1e4, -200.0, 1e4, 90.0])[:, None]
    positive = torch.randint(-1, K + 1, (64,), generator=g)
    target = torch.zeros(64, K + 1).scatter_(1, positive.clamp(min=0)[:, None], (positive >= 0).float()[:, None])
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    per_element = Gumbel().binary_cross_entropy(a, target, numerics="stable")
    per_element.sum().backward()
    fused = gumbel_binary_cross_entropy_sum(b, positive)
    fused.backward()
    assert torch.isfinite(per_element).all() and torch.isfinite(a.grad).all()
    torch.testing.assert_close(per_element.sum(), fused, rtol=1e-5, atol=0.0)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-30)


# ---------------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    ratios=st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=1, max_size=8),
    gamma=st.floats(min_value=0.1, max_value=50.0),
    mu=st.floats(min_value=0.0, max_value=5.0),
    alpha=st.floats(min_value=0.0, max_value=10.0),
)
def test_hypothesis_weights_in_range_and_monotone(ratios, gamma, mu, alpha) -> None:
    ratio = torch.tensor(sorted(ratios), dtype=torch.float64)
    pos_w, neg_w = eqlv2_weights(ratio, gamma=gamma, mu=mu, alpha=alpha)
    assert pos_w[0] == 1 and neg_w[0] == 1  # the background column is never re-weighted
    assert ((neg_w >= 0) & (neg_w <= 1)).all()
    assert ((pos_w >= 1) & (pos_w <= 1 + alpha + 1e-12)).all()
    torch.testing.assert_close(pos_w + alpha * neg_w, torch.full_like(pos_w, 1 + alpha))
    assert (neg_w[2:] >= neg_w[1:-1]).all()  # more positive gradient, less damping of the negatives


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), act=st.sampled_from(["sigmoid", "gumbel", "probit"]), steps=st.integers(1, 5))
def test_hypothesis_statistics_are_monotone_and_their_ratio(seed, act, steps) -> None:
    loss = EQLv2Loss(activation=get_activation(act), num_classes=K)
    g = torch.Generator().manual_seed(seed)
    before = (loss.pos_grad.clone(), loss.neg_grad.clone())
    for _ in range(steps):
        rows = int(torch.randint(0, 12, (1,), generator=g))
        logits = torch.randn(rows, K + 1, generator=g) * 4
        labels = torch.randint(0, K + 1, (rows,), generator=g)
        value = loss(logits, labels)
        assert torch.isfinite(value) and value >= 0
        assert (loss.pos_grad >= before[0]).all() and (loss.neg_grad >= before[1]).all()
        before = (loss.pos_grad.clone(), loss.neg_grad.clone())
        torch.testing.assert_close(loss.pos_neg, loss.pos_grad / (loss.neg_grad + 1e-10))
        scores = loss.scores(logits)
        assert scores.shape == (rows, K) and ((scores >= 0) & (scores <= 1)).all()


def test_statistics_change_in_training_mode_only() -> None:
    loss = EQLv2Loss(activation=Sigmoid(), num_classes=K).eval()
    logits, labels = _batch(16, 0)
    loss(logits, labels)
    assert (loss.pos_grad == 0).all() and (loss.neg_grad == 0).all() and (loss.pos_neg == 100).all()
    first = loss.train()(logits, labels)
    assert loss.neg_grad.sum() > 0
    # the first step's weights are all 1: plain BCE over the K + 1 columns
    torch.testing.assert_close(first, F.binary_cross_entropy_with_logits(logits, F.one_hot(labels, K + 1).float(),
                                                                         reduction="sum") / 16)  # fmt: skip


def test_a_non_finite_step_leaves_the_statistics_finite() -> None:
    loss = EQLv2Loss(activation=Sigmoid(), num_classes=K)
    logits, labels = _batch(16, 0)
    loss(logits, labels)
    kept = loss.neg_grad.clone()
    bad = logits.clone()
    bad[:, 2] = float("nan")
    loss(bad, labels)
    assert torch.isfinite(loss.pos_grad).all() and torch.isfinite(loss.neg_grad).all()
    assert loss.neg_grad[1] == kept[1] and (loss.neg_grad[[0, 2, 3, 4]] > kept[[0, 2, 3, 4]]).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gamma": 0.0}, "gamma must be > 0"),
        ({"mu": -0.1}, "mu must be >= 0"),
        ({"alpha": float("nan")}, "alpha must be >= 0"),
        ({"score_objectness": "yes"}, "score_objectness must be true or false"),
    ],
)
def test_bad_hyper_parameters_are_one_line(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        EQLv2Loss(activation=Sigmoid(), num_classes=K, **kwargs)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# State: checkpoints, cascade stages, processes
# ---------------------------------------------------------------------------------------------------------------
class _Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, K + 1)
        self.cls_loss = EQLv2Loss(activation=Gumbel(), num_classes=K)
        self.cls_loss.init_classifier(self.fc)

    def forward(self, features, labels):
        return self.cls_loss(self.fc(features), labels)


def _training(seed=0):
    torch.manual_seed(seed)
    model = _Head()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=100)
    return model, optimizer, scheduler, torch.amp.GradScaler("cpu", enabled=False)


def _steps(model, optimizer, first, count):
    values = []
    for step in range(first, first + count):
        g = torch.Generator().manual_seed(step)
        features = torch.randn(32, 6, generator=g)
        labels = torch.multinomial(torch.tensor([0.5, 0.3, 0.1, 0.05, 0.05, 0.0]), 32, True, generator=g)
        value = model(features, labels)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        values.append(value.item())
    return values


def test_statistics_are_checkpointed_and_restored_on_resume(tmp_path) -> None:
    model, optimizer, scheduler, scaler = _training()
    _steps(model, optimizer, 0, 3)
    state = checkpoint.capture(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                               sampler={"epoch": 0, "position": 3}, iteration=3, skipped_steps=0)  # fmt: skip
    assert {"cls_loss.pos_grad", "cls_loss.neg_grad", "cls_loss.pos_neg"} <= set(state["model"])
    checkpoint.save(state, tmp_path, iteration=3)
    straight = _steps(model, optimizer, 3, 3)

    resumed, optimizer2, scheduler2, scaler2 = _training(seed=1)  # other weights, empty statistics
    assert (resumed.cls_loss.pos_neg == 100).all()
    saved = checkpoint.load(tmp_path / checkpoint.LAST)
    iteration, _, _ = checkpoint.restore(saved, model=resumed, optimizer=optimizer2, scheduler=scheduler2,
                                         scaler=scaler2)  # fmt: skip
    assert iteration == 3 and (saved["model"]["cls_loss.pos_neg"] != 100).all()
    torch.testing.assert_close(resumed.cls_loss.pos_neg, saved["model"]["cls_loss.pos_neg"])
    assert _steps(resumed, optimizer2, 3, 3) == straight
    for name, value in model.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name


def test_each_cascade_stage_keeps_its_own_statistics() -> None:
    losses = stage_losses(EQLv2Loss(activation=Gumbel(), num_classes=K), 3)
    assert len({loss.pos_grad.data_ptr() for loss in losses}) == 3
    assert all(loss.activation is losses[0].activation for loss in losses)
    for stage, loss in enumerate(losses):  # each stage sees its own RoIs
        loss(*_batch(20, 10 + stage))
    ratios = [loss.pos_neg for loss in losses]
    assert not torch.equal(ratios[0], ratios[1]) and not torch.equal(ratios[1], ratios[2])


def _rank_worker(rank, port, out):
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        loss = EQLv2Loss(activation=Gumbel(), num_classes=K)
        for step in range(3):
            logits, labels = _batch(24, step)
            half = slice(0, 10) if rank == 0 else slice(10, 24)  # unequal shards
            loss(logits[half], labels[half])
        loss(torch.zeros(0, K + 1), torch.zeros(0, dtype=torch.long))  # a rank without RoIs still joins in
        if rank == 0:
            torch.save(loss.state_dict(), out)
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(300)
def test_statistics_are_summed_over_processes(tmp_path) -> None:
    """Two gloo processes on the two halves of each batch end with the statistics of one process on the whole."""
    out = tmp_path / "rank0.pt"
    mp.start_processes(_rank_worker, args=(free_port(), out), nprocs=2, join=True, start_method="spawn")
    single = EQLv2Loss(activation=Gumbel(), num_classes=K)
    for step in range(3):
        single(*_batch(24, step))
    for name, value in single.state_dict().items():
        torch.testing.assert_close(torch.load(out)[name], value, rtol=1e-5, atol=0.0, msg=name)


# ---------------------------------------------------------------------------------------------------------------
# Configuration and the user's command
# ---------------------------------------------------------------------------------------------------------------
def test_softmax_is_refused_in_one_line() -> None:
    with pytest.raises(InvalidPairError) as info:
        check_pair("softmax", "eqlv2")
    assert "\n" not in str(info.value) and "activation=softmax cannot be used with loss=eqlv2" in str(info.value)
    with pytest.raises(InvalidPairError, match="valid activations: sigmoid, gumbel, probit"):
        EQLv2Loss(activation=Softmax(), num_classes=K)


def _smoke(tmp_path, data_root, *args):
    folder = tmp_path / "cell"
    folder.mkdir()
    base = ["dataset=embedded", "detector=tiny", "schedule=smoke", "logger=none", "loss=eqlv2"]
    return folder, run_train([*base, *args], cwd=folder, env={"GOL_DATA": str(data_root)})


def test_softmax_is_refused_before_training(tmp_path, data_root) -> None:
    folder, done = _smoke(tmp_path, data_root, "activation=softmax")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "activation=softmax cannot be used with loss=EQLv2Loss; valid pairs" in done.stderr
    assert not list(folder.glob("outputs/runs/*/checkpoints/*.pt"))


def test_smoke_cell_trains_and_evaluates(tmp_path, data_root) -> None:
    folder, done = _smoke(tmp_path, data_root, "activation=gumbel")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (folder / "outputs" / "runs").iterdir()
    rec = json.loads((run_dir / "record.json").read_text())
    assert rec["state"] == "finished" and rec["choices"]["loss"] == "eqlv2"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert all(v is None or 0.0 <= v <= 1.0 for v in metrics["segm"].values())
    state = checkpoint.load(run_dir / "checkpoints" / checkpoint.LAST)["model"]
    pos, neg = state["roi_heads.cls_loss.pos_grad"], state["roi_heads.cls_loss.neg_grad"]
    assert pos.shape == neg.shape and neg.sum() > 0 and math.isfinite(float(pos.sum()))
