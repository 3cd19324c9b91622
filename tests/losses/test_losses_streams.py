"""The stochastic losses' random streams and per-group statistics: one stream per data-parallel rank, restored
exactly on resume, and batch statistics and draws per group of ``images_per_group`` images, as on one official
GPU."""

from __future__ import annotations

import io
import logging

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from losses_official import official_droploss, official_federated
from torch import Tensor, nn

from gol.activations import Gumbel, Sigmoid, get_activation
from gol.losses import (
    CrossEntropyLoss,
    DropLoss,
    FederatedLoss,
    drop_loss,
    drop_ratio,
    droploss_drop,
    federated_classes,
    federated_loss,
    group_drop_ratios,
    set_stream_rank,
    tail_classes,
)
from gol.losses import groups as groups_module
from gol.losses.rng import make_generator, mix_seed, substream_seed

K = 6
COUNTS = [1, 3, 200, 50, 999, 2]
IMAGES = 10_000  # lambda 0.0011: columns 0, 1 and 5 are tail
ROIS = [7, 5, 6, 8, 4, 6]  # six images: groups of 4 -> [26, 10] RoIs, groups of 2 -> [12, 14, 10]


@pytest.fixture
def stats(make_stats):
    return make_stats(COUNTS, IMAGES)


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(groups_module, "_WARNED", set())


def _drop(stats, **options) -> DropLoss:
    return DropLoss(activation=Sigmoid(), num_classes=K, stats=stats, **options)


def _fed(stats, **options) -> FederatedLoss:
    return FederatedLoss(activation=Sigmoid(), num_classes=K, stats=stats, num_sampled_classes=3, **options)


def _labels(rows: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(1, K + 1, (rows,), generator=g)
    labels[torch.rand(rows, generator=g) < 0.5] = 0
    return labels


def _trained(loss: nn.Module, labels: Tensor, rois_per_image=None) -> Tensor:
    """(R, K) bool: the terms the loss trains this call. With sigmoid at logit 0 every kept term has gradient
    +-0.5 / R, a dropped one exactly 0, so this is the complement of the drop matrix (DropLoss) or the class set
    S repeated over each group's rows (Federated)."""
    x = torch.zeros(labels.numel(), K, requires_grad=True)
    loss(x, labels, rois_per_image=rois_per_image).backward()
    assert x.grad is not None
    return x.grad != 0


# -- per-rank streams -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [_drop, _fed])
def test_ranks_draw_different_numbers_and_each_rank_is_reproducible(stats, make) -> None:
    labels = torch.zeros(40, dtype=torch.long)
    labels[:2] = torch.tensor([1, 3])  # r = 1/2; Federated: S = {background, 1, 3} and two drawn classes
    if make is _fed:
        labels[:2] = 0  # S = {background} and two drawn classes
    per_rank: dict[int, Tensor] = {}
    for rank in (0, 1, 0, 1):
        loss = make(stats, seed=5)
        set_stream_rank(loss, rank)
        seq = torch.stack([_trained(loss, labels) for _ in range(8)])
        if rank in per_rank:
            assert torch.equal(seq, per_rank[rank])  # the same rank draws the same numbers again
        per_rank[rank] = seq
    assert not torch.equal(per_rank[0], per_rank[1])  # same seed, rank 0 vs rank 1: different draws


def test_rank_zero_keeps_the_single_process_stream(stats) -> None:
    """Rank 0 with one group draws generator mix_seed(seed, draw), the stream of a plain single-process run."""
    labels = _labels(20, seed=2)
    loss = _drop(stats, seed=3)
    got = [_trained(loss, labels) for _ in range(2)]
    tail = tail_classes(stats.image_frequency, 0.0011)
    for draw, trained in enumerate(got):
        uniform = torch.rand((20, K), generator=make_generator(mix_seed(3, draw), torch.device("cpu")))
        positive = torch.nn.functional.one_hot(labels, K + 1)[:, 1:].bool()  # positives are never dropped
        assert torch.equal(trained, ~droploss_drop(labels, tail=tail, uniform=uniform) | positive)


@pytest.mark.parametrize("make", [_drop, _fed])
def test_resume_from_rank_zeros_state_continues_every_ranks_stream(stats, make) -> None:
    """Rank 0 saves (seed, draws); each rank loads it and draws exactly what it would have drawn uninterrupted,
    also when the ranks saw different data (one draw per call, even without RoIs, keeps them in lockstep)."""
    data = {0: [_labels(30, seed=s) for s in range(5)], 1: [_labels(n, seed=9 + n) for n in (12, 0, 25, 17, 30)]}
    straight, saved = {}, None
    for rank in (0, 1):
        loss = make(stats, seed=11)
        loss.set_rank(rank)
        for labels in data[rank][:3]:
            _trained(loss, labels) if labels.numel() else loss(torch.zeros(0, K), labels)
        if rank == 0:
            buffer = io.BytesIO()
            torch.save(loss.state_dict(), buffer)
            saved = buffer.getvalue()
        assert loss.get_extra_state() == {"seed": 11, "draws": 3}
        straight[rank] = [_trained(loss, labels) for labels in data[rank][3:]]
    assert saved is not None
    for rank in (0, 1):
        resumed = make(stats, seed=0)
        resumed.set_rank(rank)
        resumed.load_state_dict(torch.load(io.BytesIO(saved)))
        assert resumed.rank == rank and resumed.seed == 11
        for labels, expected in zip(data[rank][3:], straight[rank]):
            assert torch.equal(_trained(resumed, labels), expected)


def test_set_stream_rank_reaches_every_nested_loss_and_is_not_checkpointed(stats) -> None:
    drop, fed = _drop(stats), _fed(stats)
    model = nn.ModuleDict({"a": drop, "b": nn.ModuleList([fed, CrossEntropyLoss(activation=Sigmoid(), num_classes=K)])})
    set_stream_rank(model, 3)
    assert drop.rank == 3 and fed.rank == 3
    assert model.state_dict()["a._extra_state"] == {"seed": 0, "draws": 0}
    with pytest.raises(ValueError, match="rank must be a non-negative int"):
        set_stream_rank(model, -1)


# -- per-group statistics ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gumbel", "sigmoid"])
@pytest.mark.parametrize("rank", [0, 2])
def test_droploss_groups_equal_the_official_loss_per_group(stats, make_batch, name: str, rank: int) -> None:
    """images_per_group=2 on six images: three groups, each the official DropLoss with its own r and its own
    draw (sub-stream rank * 3 + g); the value is the sum over groups of R_g * L_g, divided by R."""
    logits, labels = make_batch(sum(ROIS), K, seed=3, scale=5.0)
    loss = DropLoss(
        activation=get_activation(name), num_classes=K, stats=stats, seed=4, images_per_group=2, numerics="official"
    )
    loss.set_rank(rank)
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ours = loss(a, labels, rois_per_image=ROIS)
    sizes, ref = [12, 14, 10], []
    for g, (q, lab) in enumerate(zip(torch.split(b, sizes), torch.split(labels, sizes))):
        uniform = torch.rand(
            q.shape, generator=make_generator(mix_seed(substream_seed(4, rank * 3 + g), 0), torch.device("cpu"))
        )
        ref.append(official_droploss(q, lab, stats.image_frequency.float(), 0.0011, uniform, name) * q.shape[0])
    expected = torch.stack(ref).sum() / sum(sizes)
    ours.backward()
    expected.backward()
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("name", ["gumbel", "sigmoid"])
def test_federated_groups_equal_the_official_loss_per_group(make_stats, make_batch, name: str) -> None:
    stats = make_stats([c + 1 for c in COUNTS])
    logits, labels = make_batch(sum(ROIS), K, seed=5, scale=5.0)
    loss = FederatedLoss(
        activation=get_activation(name),
        num_classes=K,
        stats=stats,
        num_sampled_classes=3,
        seed=6,
        images_per_group=2,
        numerics="official",
    )
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ours = loss(a, labels, rois_per_image=ROIS)
    sizes, ref = [12, 14, 10], []
    for g, (q, lab) in enumerate(zip(torch.split(b, sizes), torch.split(labels, sizes))):
        generator = make_generator(mix_seed(substream_seed(6, g), 0), torch.device("cpu"))
        classes = federated_classes(lab, sample_weight=loss.sample_weight, num_sampled=3, generator=generator)
        assert classes[lab[lab > 0] - 1].all()  # each group's own GT classes are trained
        ref.append(official_federated(q, lab, classes, name) * q.shape[0])
    expected = torch.stack(ref).sum() / sum(sizes)
    ours.backward()
    expected.backward()
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("make", [_drop, _fed])
def test_one_process_of_two_groups_draws_what_two_ranks_of_one_group_draw(stats, make) -> None:
    """Sub-stream rank * groups + g: 8 images in groups of 4 on one process train exactly the terms that two
    processes of 4 images each train, so a 1 x 8 run stands in for 2 x 4."""
    rois = [5, 6, 4, 7, 6, 5, 3, 4]
    labels = _labels(sum(rois), seed=7)
    labels[[0, 22]] = torch.tensor([1, 2])
    single = _trained(make(stats, seed=8), labels, rois)
    halves = []
    for rank, (lab, part) in enumerate(zip(torch.split(labels, [22, 18]), (rois[:4], rois[4:]))):
        loss = make(stats, seed=8)
        loss.set_rank(rank)
        halves.append(_trained(loss, lab, part))
    assert torch.equal(single, torch.cat(halves))


@pytest.mark.parametrize("make", [_drop, _fed])
def test_one_group_or_null_is_the_ungrouped_loss(stats, make_batch, make) -> None:
    logits, labels = make_batch(sum(ROIS[:4]), K, seed=9)
    plain = make(stats, seed=2)(logits, labels)
    assert torch.equal(make(stats, seed=2)(logits, labels, rois_per_image=ROIS[:4]), plain)  # 4 images, groups of 4
    logits, labels = make_batch(sum(ROIS), K, seed=9)
    plain = make(stats, seed=2)(logits, labels)
    assert torch.equal(make(stats, seed=2, images_per_group=None)(logits, labels, rois_per_image=ROIS), plain)


def test_groups_have_their_own_drop_ratio(stats) -> None:
    """A head-only group drops every background tail negative (r = 0); a tail-only group keeps them all (r = 1)."""
    tail = tail_classes(stats.image_frequency, 0.0011)
    labels = torch.tensor([3, 0, 0, 1, 0, 0])  # group 0: head class 3; group 1: tail class 1
    trained = _trained(_drop(stats, images_per_group=1), labels, [3, 3])
    assert not trained[1:3, tail].any()
    assert trained[4:6, tail].all()
    torch.testing.assert_close(group_drop_ratios(labels, tail=tail, group_sizes=[3, 3]), torch.tensor([0.0, 1.0]))
    assert drop_ratio(labels, tail=tail).item() == pytest.approx(0.5)


def test_partial_last_group_warns_once_and_carries_on(stats, fresh_warnings, caplog) -> None:
    labels = _labels(sum(ROIS[:2]), seed=3)
    loss = _drop(stats)
    with caplog.at_level(logging.WARNING, logger="gol.losses.groups"):
        for _ in range(3):
            assert torch.isfinite(loss(torch.zeros(labels.numel(), K), labels, rois_per_image=ROIS[:2]))
        other = _drop(stats)
        other.set_rank(1)  # only rank 0 speaks for the run
        other(torch.zeros(labels.numel(), K), labels, rois_per_image=ROIS[:2])
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "loss.images_per_group=4 but this process holds 2 images per step; statistics are computed over groups of "
        "[2] images, the released runs used 4"
    ]


def test_bad_group_options_are_refused(stats) -> None:
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="images_per_group must be a positive int"):
            _drop(stats, images_per_group=bad)
        with pytest.raises(ValueError, match="images_per_group must be a positive int"):
            _fed(stats, images_per_group=bad)
    ce = CrossEntropyLoss(activation=Sigmoid(), num_classes=K)
    for loss in (_drop(stats), ce):
        with pytest.raises(
            ValueError, match="rois_per_image must be non-negative RoI counts per image summing to the 5"
        ):
            loss(torch.zeros(5, loss.num_logits), torch.zeros(5, dtype=torch.long), rois_per_image=[2, 2])
    with pytest.raises(ValueError, match=r"classes must be \(2, K\)"):
        federated_loss(
            torch.zeros(4, K),
            torch.zeros(4).long(),
            activation=Gumbel(),
            classes=torch.ones(K).bool(),
            group_sizes=[2, 2],
        )


# -- properties ---------------------------------------------------------------------------------------------------

_GROUPS = st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(sizes=_GROUPS, seed=st.integers(0, 2**16), data=st.data())
def test_permuting_groups_permutes_their_statistics(sizes, seed, data) -> None:
    order = data.draw(st.permutations(range(len(sizes))))
    tail = torch.tensor([True, True, False, False, False, True])
    labels = _labels(sum(sizes), seed)
    uniform = torch.rand(sum(sizes), K, generator=torch.Generator().manual_seed(seed + 1))
    logits = torch.randn(sum(sizes), K, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64)
    classes = torch.rand(len(sizes), K, generator=torch.Generator().manual_seed(seed + 3)) < 0.5

    def permuted(x: Tensor) -> Tensor:
        blocks = torch.split(x, sizes)
        return torch.cat([blocks[i] for i in order])

    new_sizes = [sizes[i] for i in order]
    ratios = group_drop_ratios(labels, tail=tail, group_sizes=sizes)
    torch.testing.assert_close(
        group_drop_ratios(permuted(labels), tail=tail, group_sizes=new_sizes), ratios[list(order)], equal_nan=True
    )
    drop = droploss_drop(labels, tail=tail, uniform=uniform, group_sizes=sizes)
    assert torch.equal(
        droploss_drop(permuted(labels), tail=tail, uniform=permuted(uniform), group_sizes=new_sizes), permuted(drop)
    )
    # Each group alone gives its rows of the grouped drop matrix.
    alone = [
        droploss_drop(lab, tail=tail, uniform=u)
        for lab, u in zip(torch.split(labels, sizes), torch.split(uniform, sizes))
    ]
    assert torch.equal(torch.cat(alone), drop)
    if sum(sizes):
        act = Sigmoid()
        value = drop_loss(logits, labels, activation=act, tail=tail, uniform=uniform, group_sizes=sizes)
        again = drop_loss(
            permuted(logits),
            permuted(labels),
            activation=act,
            tail=tail,
            uniform=permuted(uniform),
            group_sizes=new_sizes,
        )
        torch.testing.assert_close(again, value)
        fed = federated_loss(logits, labels, activation=act, classes=classes, group_sizes=sizes)
        fed_again = federated_loss(
            permuted(logits), permuted(labels), activation=act, classes=classes[list(order)], group_sizes=new_sizes
        )
        torch.testing.assert_close(fed_again, fed)
