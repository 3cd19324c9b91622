"""EQLLoss: reduces to plain binary CE without tail classes, matches the official formula, validates lambda."""

from __future__ import annotations

import pytest
import torch
from losses_official import official_eql

from gol.activations import Gumbel, Sigmoid, Softmax, get_activation
from gol.losses import CrossEntropyLoss, EQLLoss, InvalidPairError, eql_loss, tail_classes

BINARY = ("sigmoid", "gumbel", "probit")
K = 6
COUNTS = [1, 3, 200, 50, 999, 2]
IMAGES = 10_000  # lambda 0.0011 -> fewer than 11 images: classes 1, 2 and 6 are tail


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("numerics", ["stable", "official"])
def test_no_tail_class_equals_plain_binary_ce(make_stats, make_batch, name: str, numerics: str) -> None:
    stats = make_stats(COUNTS, IMAGES)
    logits, labels = make_batch(20, K, seed=1)
    eql = EQLLoss(activation=get_activation(name), num_classes=K, stats=stats, lambda_=1e-9, numerics=numerics)
    assert not eql.tail.any()
    plain = CrossEntropyLoss(activation=get_activation(name), num_classes=K, background_column=False, numerics=numerics)
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    la, lb = eql(a, labels), plain(b, labels)
    la.backward()
    lb.backward()
    if name != "gumbel" or numerics != "official":  # GumbelCE's extra scalar clamp is plain CE only
        torch.testing.assert_close(la, lb)
        torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("name", ["gumbel", "sigmoid"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_official_mode_equals_transcription(make_stats, make_batch, name: str, seed: int) -> None:
    stats = make_stats(COUNTS, IMAGES)
    logits, labels = make_batch(30, K, seed=seed, scale=5.0)
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ours = EQLLoss(activation=get_activation(name), num_classes=K, stats=stats, numerics="official")(a, labels)
    ref = official_eql(b, labels, stats.image_frequency.float(), 0.0011, name)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(a.grad, b.grad)


def test_tail_negatives_of_foreground_rois_get_no_gradient(make_stats) -> None:
    stats = make_stats(COUNTS, IMAGES)
    loss = EQLLoss(activation=Gumbel(), num_classes=K, stats=stats)
    assert loss.tail.tolist() == [True, True, False, False, False, True]
    labels = torch.tensor([3, 0, 1])  # a head RoI, a background RoI, a tail RoI
    x = torch.zeros(3, K, requires_grad=True)
    loss(x, labels).backward()
    tail = loss.tail
    assert (x.grad[0, tail] == 0).all()  # foreground RoI: tail negatives dropped
    assert (x.grad[1] != 0).all()  # background RoI: every negative kept
    assert x.grad[2, 0] < 0 and (x.grad[2, 1:][tail[1:]] == 0).all()  # its own (tail) positive is kept


def test_tail_classes_threshold_and_lambda_validation() -> None:
    freq = torch.tensor([0.0005, 0.0011, 0.002], dtype=torch.float64)
    assert tail_classes(freq, 0.0011).tolist() == [True, False, False]
    for bad in (0.0, 1.0, -0.1, 1.5, float("nan"), "0.001", True):
        with pytest.raises(ValueError, match="lambda_ must be a number in"):
            tail_classes(freq, bad)  # type: ignore[arg-type]


def test_constructor_errors(make_stats) -> None:
    with pytest.raises(ValueError, match="EQLLoss needs stats"):
        EQLLoss(activation=Sigmoid(), num_classes=K)
    with pytest.raises(ValueError, match="lambda_"):
        EQLLoss(activation=Sigmoid(), num_classes=K, stats=make_stats(COUNTS, IMAGES), lambda_=2.0)
    with pytest.raises(InvalidPairError, match="softmax"):
        EQLLoss(activation=Softmax(), num_classes=K, stats=make_stats(COUNTS, IMAGES))
    with pytest.raises(ValueError, match="logits must have shape"):
        EQLLoss(activation=Sigmoid(), num_classes=K, stats=make_stats(COUNTS, IMAGES))(
            torch.zeros(2, K + 1), torch.zeros(2).long()
        )


@pytest.mark.parametrize("name", BINARY)
def test_gradcheck_float64(make_stats, make_batch, name: str) -> None:
    tail = tail_classes(make_stats(COUNTS, IMAGES).image_frequency, 0.0011)
    logits, labels = make_batch(6, K, seed=3, dtype=torch.float64)
    act = get_activation(name)
    fn = lambda x: eql_loss(x, labels, activation=act, tail=tail)
    assert torch.autograd.gradcheck(fn, (logits.requires_grad_(True),))


def test_buffers_in_state_dict(make_stats) -> None:
    loss = EQLLoss(activation=Gumbel(), num_classes=K, stats=make_stats(COUNTS, IMAGES))
    assert set(loss.state_dict()) == {"tail"}
    assert loss.scores(torch.zeros(2, K)).shape == (2, K)
