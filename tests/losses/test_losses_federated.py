"""FederatedLoss: the sampled class set, reduction to plain BCE, official formula, seeded and restorable draws."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gol.activations import Gumbel, Sigmoid, get_activation
from gol.losses import CrossEntropyLoss, FederatedLoss, federated_classes, federated_loss

BINARY = ("sigmoid", "gumbel", "probit")
K = 12
COUNTS = [1, 4, 9, 16, 25, 36, 49, 64, 81, 100, 0, 400]  # class 11 never appears in training images


def test_class_set_contains_gt_and_has_the_requested_size() -> None:
    weight = torch.tensor(COUNTS, dtype=torch.float32).sqrt()
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 3, 3, 7])  # background + two classes: |unique| = 3
    for num_sampled in (3, 5, 8):
        s = federated_classes(labels, sample_weight=weight, num_sampled=num_sampled, generator=g)
        assert s[2] and s[6]  # GT classes 3 and 7 (columns 2 and 6)
        # background counts towards |S| as in the official code: 2 GT classes + (num_sampled - 3) drawn
        assert int(s.sum()) == 2 + max(0, num_sampled - 3)
        assert not s[10]  # zero image count: never drawn


def test_request_larger_than_available_takes_every_class() -> None:
    weight = torch.tensor(COUNTS, dtype=torch.float32).sqrt()
    s = federated_classes(torch.tensor([1]), sample_weight=weight, num_sampled=50, generator=None)
    assert s.tolist() == [c > 0 for c in COUNTS]


def test_draw_follows_sqrt_image_count() -> None:
    weight = torch.tensor([1.0, 4.0, 16.0])  # image counts 1, 16, 256 -> weights 1 : 4 : 16
    g = torch.Generator().manual_seed(1)
    hits = torch.zeros(3)
    for _ in range(2000):
        hits += federated_classes(torch.tensor([0]), sample_weight=weight, num_sampled=2, generator=g).float()
    # background fills one of the two slots, so one class is drawn: P = 1/21, 4/21, 16/21 (sd < 0.01)
    torch.testing.assert_close(hits / 2000, torch.tensor([1.0, 4.0, 16.0]) / 21, atol=0.04, rtol=0)


@pytest.mark.parametrize("name", BINARY)
def test_all_classes_sampled_equals_plain_binary_ce(make_stats, make_batch, name: str) -> None:
    stats = make_stats([c + 1 for c in COUNTS])
    logits, labels = make_batch(20, K, seed=2)
    fed = FederatedLoss(activation=get_activation(name), num_classes=K, stats=stats, num_sampled_classes=K + 1)
    plain = CrossEntropyLoss(activation=get_activation(name), num_classes=K, background_column=False)
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    la, lb = fed(a, labels), plain(b, labels)
    la.backward()
    lb.backward()
    torch.testing.assert_close(la, lb)
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("name", ["gumbel", "sigmoid"])
def test_official_mode_equals_transcription(make_batch, one_hot, name: str) -> None:
    """paper-notes 3.6: L = sum(BCE(q, T) * w) / N with w[:, j] = 1 for j in S (Gumbel: clamp + BCE on eta)."""
    logits, labels = make_batch(30, K, seed=3, scale=5.0)
    classes = torch.zeros(K, dtype=torch.bool)
    classes[[0, 3, 4, 9]] = True
    classes[labels[labels > 0] - 1] = True
    target = one_hot(labels, K, background_column=False)
    w = classes.float().view(1, K).expand(30, K)
    if name == "gumbel":
        ref_el = F.binary_cross_entropy(
            1 / torch.exp(torch.exp(-torch.clamp(logits, -4, 10))), target, reduction="none"
        )
    else:
        ref_el = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    ref = torch.sum(ref_el * w) / 30
    ours = federated_loss(logits, labels, activation=get_activation(name), classes=classes, numerics="official")
    torch.testing.assert_close(ours, ref)


def test_seeded_draws_reproducible_and_restorable(make_stats, make_batch) -> None:
    stats = make_stats([c + 1 for c in COUNTS])
    logits, labels = make_batch(10, K, seed=4)
    labels[:] = torch.tensor([0, 0, 0, 1, 1, 1, 0, 0, 2, 2])
    make = lambda seed: FederatedLoss(
        activation=Sigmoid(), num_classes=K, stats=stats, num_sampled_classes=6, seed=seed
    )
    first, again = make(5), make(5)
    seq = torch.stack([first(logits, labels) for _ in range(4)])
    assert torch.equal(seq, torch.stack([again(logits, labels) for _ in range(4)]))
    assert len(set(seq.tolist())) > 1
    state = first.state_dict()
    expected = first(logits, labels)
    restored = make(0)
    restored.load_state_dict(state)
    assert torch.equal(restored(logits, labels), expected)
    assert set(state) == {"sample_weight", "_extra_state"}


@pytest.mark.parametrize("name", BINARY)
def test_gradcheck_float64(make_batch, name: str) -> None:
    logits, labels = make_batch(6, K, seed=5, dtype=torch.float64)
    classes = torch.rand(K, generator=torch.Generator().manual_seed(5)) < 0.5
    classes[labels[labels > 0] - 1] = True
    act = get_activation(name)
    fn = lambda x: federated_loss(x, labels, activation=act, classes=classes)
    assert torch.autograd.gradcheck(fn, (logits.requires_grad_(True),))


def test_constructor_errors(make_stats) -> None:
    stats = make_stats(COUNTS)
    with pytest.raises(ValueError, match="FederatedLoss needs stats"):
        FederatedLoss(activation=Gumbel(), num_classes=K)
    with pytest.raises(ValueError, match="num_sampled_classes"):
        FederatedLoss(activation=Gumbel(), num_classes=K, stats=stats, num_sampled_classes=0)
    with pytest.raises(ValueError, match="frequency_power"):
        FederatedLoss(activation=Gumbel(), num_classes=K, stats=stats, frequency_power=-1.0)
    with pytest.raises(ValueError, match="stats has 12 categories but num_classes=5"):
        FederatedLoss(activation=Gumbel(), num_classes=5, stats=stats)
