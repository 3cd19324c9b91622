"""DropLoss / GOL: official transcription, the NaN-ratio case, reductions to BCE, seeded and restorable drops."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from losses_official import official_droploss

from gol.activations import Gumbel, Sigmoid, Softmax, get_activation
from gol.losses import CrossEntropyLoss, DropLoss, InvalidPairError, drop_loss, drop_ratio, droploss_drop, tail_classes

BINARY = ("sigmoid", "gumbel", "probit")
K = 6
COUNTS = [1, 3, 200, 50, 999, 2]
IMAGES = 10_000  # lambda 0.0011: classes 1, 2 and 6 (columns 0, 1, 5) are tail


@pytest.mark.parametrize("name", ["gumbel", "sigmoid"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_official_mode_equals_transcription(make_stats, make_batch, name: str, seed: int) -> None:
    stats = make_stats(COUNTS, IMAGES)
    logits, labels = make_batch(40, K, seed=seed, scale=5.0)
    uniform = torch.rand(logits.shape, generator=torch.Generator().manual_seed(seed))
    tail = tail_classes(stats.image_frequency, 0.0011)
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ours = drop_loss(a, labels, activation=get_activation(name), tail=tail, uniform=uniform, numerics="official")
    ref = official_droploss(b, labels, stats.image_frequency.float(), 0.0011, uniform, name)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("name", BINARY)
def test_stable_equals_official_where_no_clamp_is_active(make_stats, make_batch, name: str) -> None:
    tail = tail_classes(make_stats(COUNTS, IMAGES).image_frequency, 0.0011)
    logits, labels = make_batch(40, K, seed=4, dtype=torch.float64)
    logits = logits.clamp(-3.3, 4.9)  # inside every official clamp (and above Gumbel's BCE 1e-12 floor)
    uniform = torch.rand(logits.shape, generator=torch.Generator().manual_seed(4))
    out = {}
    for numerics in ("stable", "official"):
        x = logits.clone().requires_grad_(True)
        loss = drop_loss(x, labels, activation=get_activation(name), tail=tail, uniform=uniform, numerics=numerics)
        loss.backward()
        out[numerics] = (loss.detach(), x.grad)
    torch.testing.assert_close(out["stable"][0], out["official"][0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out["stable"][1], out["official"][1], rtol=1e-7, atol=1e-9)


def test_drop_ratio_and_mask_small_case() -> None:
    tail = torch.tensor([True, False, True])
    labels = torch.tensor([1, 2, 2, 0, 0])  # fg: tail, head, head -> r = 1/3
    assert drop_ratio(labels, tail=tail).item() == pytest.approx(1 / 3)
    uniform = torch.tensor([[0.9] * 3, [0.9] * 3, [0.1] * 3, [0.5, 0.2, 0.34], [0.3, 0.3, 0.3]])
    drop = droploss_drop(labels, tail=tail, uniform=uniform)
    expected = torch.tensor(
        [
            [True, False, True],  # foreground rows: every tail column (its own positive is kept later)
            [True, False, True],
            [True, False, True],
            [True, False, True],  # background, U > 1/3 on both tail columns
            [False, False, False],  # background, U < 1/3: kept
        ]
    )
    assert torch.equal(drop, expected)


def test_no_foreground_roi_gives_nan_ratio_and_drops_nothing(make_stats, make_batch, one_hot) -> None:
    stats = make_stats(COUNTS, IMAGES)
    logits, _ = make_batch(12, K, seed=5)
    labels = torch.zeros(12, dtype=torch.long)
    assert torch.isnan(drop_ratio(labels, tail=tail_classes(stats.image_frequency, 0.0011)))
    loss = DropLoss(activation=Sigmoid(), num_classes=K, stats=stats)(logits, labels)
    ref = F.binary_cross_entropy_with_logits(logits, one_hot(labels, K, background_column=False), reduction="sum") / 12
    torch.testing.assert_close(loss, ref)


def test_head_only_batch_drops_every_background_tail_negative(make_stats) -> None:
    stats = make_stats(COUNTS, IMAGES)
    loss = DropLoss(activation=Gumbel(), num_classes=K, stats=stats)
    labels = torch.tensor([3, 4, 0, 0])  # r = 0: U > 0 drops background tail negatives (almost surely)
    x = torch.zeros(4, K, requires_grad=True)
    loss(x, labels).backward()
    assert (x.grad[:, loss.tail] == 0).all()
    assert (x.grad[2:, ~loss.tail] > 0).all()


@pytest.mark.parametrize("name", BINARY)
def test_no_tail_class_equals_plain_binary_ce(make_stats, make_batch, name: str) -> None:
    stats = make_stats(COUNTS, IMAGES)
    logits, labels = make_batch(25, K, seed=6)
    drop = DropLoss(activation=get_activation(name), num_classes=K, stats=stats, lambda_=1e-9)
    plain = CrossEntropyLoss(activation=get_activation(name), num_classes=K, background_column=False)
    torch.testing.assert_close(drop(logits, labels), plain(logits, labels))


def test_seeded_drops_reproducible_and_restorable(make_stats, make_batch) -> None:
    stats = make_stats(COUNTS, IMAGES)
    logits, labels = make_batch(30, K, seed=7, scale=2.0)
    labels[:3] = torch.tensor([1, 4, 5])  # a tail fraction strictly between 0 and 1
    first = DropLoss(activation=Gumbel(), num_classes=K, stats=stats, seed=3)
    again = DropLoss(activation=Gumbel(), num_classes=K, stats=stats, seed=3)
    other = DropLoss(activation=Gumbel(), num_classes=K, stats=stats, seed=4)
    seq = [first(logits, labels) for _ in range(3)]
    assert torch.equal(torch.stack(seq), torch.stack([again(logits, labels) for _ in range(3)]))
    assert len({round(v.item(), 6) for v in seq}) > 1  # each step draws new drops
    assert not torch.equal(seq[0], other(logits, labels))

    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    expected_next = first(logits, labels)
    restored = DropLoss(activation=Gumbel(), num_classes=K, stats=stats, seed=99)
    buffer.seek(0)
    restored.load_state_dict(torch.load(buffer))
    assert restored.seed == 3
    assert torch.equal(restored(logits, labels), expected_next)


def test_extra_state_validation(make_stats) -> None:
    loss = DropLoss(activation=Gumbel(), num_classes=K, stats=make_stats(COUNTS, IMAGES))
    state = loss.state_dict()
    assert set(state) == {"tail", "_extra_state"}
    assert state["_extra_state"] == {"seed": 0, "draws": 0}
    with pytest.raises(ValueError, match="random-stream state"):
        loss.set_extra_state({"seed": 1})
    with pytest.raises(TypeError, match="seed must be an int"):
        DropLoss(activation=Gumbel(), num_classes=K, stats=make_stats(COUNTS, IMAGES), seed=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", BINARY)
def test_gradcheck_float64(make_stats, make_batch, name: str) -> None:
    tail = tail_classes(make_stats(COUNTS, IMAGES).image_frequency, 0.0011)
    logits, labels = make_batch(8, K, seed=8, dtype=torch.float64)
    uniform = torch.rand(logits.shape, generator=torch.Generator().manual_seed(8))
    act = get_activation(name)
    fn = lambda x: drop_loss(x, labels, activation=act, tail=tail, uniform=uniform)
    assert torch.autograd.gradcheck(fn, (logits.requires_grad_(True),))


def test_constructor_errors(make_stats) -> None:
    with pytest.raises(ValueError, match="DropLoss needs stats"):
        DropLoss(activation=Gumbel(), num_classes=K)
    with pytest.raises(ValueError, match="lambda_"):
        DropLoss(activation=Gumbel(), num_classes=K, stats=make_stats(COUNTS, IMAGES), lambda_=0.0)
    with pytest.raises(InvalidPairError, match="valid activations: sigmoid, gumbel, probit, aglu"):
        DropLoss(activation=Softmax(), num_classes=K, stats=make_stats(COUNTS, IMAGES))
    with pytest.raises(ValueError, match="uniform must have the shape"):
        drop_loss(
            torch.zeros(2, K),
            torch.zeros(2).long(),
            activation=Gumbel(),
            tail=torch.zeros(K).bool(),
            uniform=torch.rand(2, K + 1),
        )
