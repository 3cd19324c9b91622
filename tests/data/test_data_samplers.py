"""Random and Repeat Factor samplers: exact small cases, rounding modes, determinism and resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gol.bench.rfs import repeat_factors_loop
from gol.data.samplers import RandomSampler, RepeatFactorSampler, repeat_factors


class Toy:
    """Four images: I0 {1}, I1 {1, 2}, I2 {3}, I3 {} (K = 3)."""

    num_classes = 3

    def __init__(self) -> None:
        self.image_index = np.array([0, 1, 1, 1, 2])
        self.labels = np.array([1, 1, 2, 2, 3])  # I1 holds two instances of category 2

    def __len__(self) -> int:
        return 4

    def occurrences(self) -> tuple[np.ndarray, np.ndarray]:
        return self.image_index, self.labels


# f = (2/4, 1/4, 1/4); with t = 1: r(c) = (sqrt 2, 2, 2); r(I) = (sqrt 2, 2, 2, 1).
EXPECTED = np.array([math.sqrt(2.0), 2.0, 2.0, 1.0])


def test_repeat_factors_exact() -> None:
    toy = Toy()
    r = repeat_factors(toy.image_index, toy.labels, num_images=4, num_classes=3, threshold=1.0)
    assert np.array_equal(r, EXPECTED)


def test_lvis_threshold_on_small_data_repeats_nothing() -> None:
    toy = Toy()
    r = repeat_factors(toy.image_index, toy.labels, num_images=4, num_classes=3, threshold=1e-3)
    assert np.array_equal(r, np.ones(4))
    r0 = repeat_factors(toy.image_index, toy.labels, num_images=4, num_classes=3, threshold=0.0)
    assert np.array_equal(r0, np.ones(4))


def _copies(sampler: RepeatFactorSampler | RandomSampler, epoch: int, n: int = 4) -> np.ndarray:
    sampler.set_epoch(epoch)
    return np.bincount(np.fromiter(iter(sampler), dtype=np.int64), minlength=n)


def test_ceil_rounding_counts() -> None:
    s = RepeatFactorSampler(dataset=Toy(), seed=0, threshold=1.0, rounding="ceil")
    for epoch in range(5):
        assert np.array_equal(_copies(s, epoch), [2, 2, 2, 1])
        assert len(s) == 7
    assert s.expected_length() == 7.0


def test_stochastic_rounding_expectation() -> None:
    s = RepeatFactorSampler(dataset=Toy(), seed=0, threshold=1.0, rounding="stochastic")
    counts = np.stack([_copies(s, e) for e in range(3000)])  # (epochs, N)
    assert np.all(counts[:, 1:] == [2, 2, 1])  # integer factors are exact every epoch
    assert set(np.unique(counts[:, 0]).tolist()) == {1, 2}
    # E[copies of I0] = sqrt 2; binomial std over 3000 epochs is 0.009.
    assert abs(counts[:, 0].mean() - math.sqrt(2.0)) < 0.04
    assert s.expected_length() == pytest.approx(5.0 + math.sqrt(2.0))


def test_stochastic_epoch_length_tracks_set_epoch() -> None:
    s = RepeatFactorSampler(dataset=Toy(), seed=0, threshold=1.0, rounding="stochastic")
    for e in range(20):
        s.set_epoch(e)
        assert len(s) == len(list(s))


@pytest.mark.parametrize("rounding", ["stochastic", "ceil"])
def test_order_pure_function_of_seed_and_epoch(rounding: str) -> None:
    a = RepeatFactorSampler(dataset=Toy(), seed=5, threshold=1.0, rounding=rounding)
    b = RepeatFactorSampler(dataset=Toy(), seed=5, threshold=1.0, rounding=rounding)
    c = RepeatFactorSampler(dataset=Toy(), seed=6, threshold=1.0, rounding=rounding)
    seq = []
    for e in range(4):
        a.set_epoch(e)
        seq.append(list(a))
    b.set_epoch(3)
    assert list(b) == seq[3]  # no dependence on the epochs iterated before
    orders = []
    for e in range(8):
        c.set_epoch(e)
        orders.append(tuple(c))
    assert len(set(orders)) > 1
    assert any(tuple(x) != y for x, y in zip(seq, orders))


@pytest.mark.parametrize(
    "factory",
    [
        lambda ds: RandomSampler(dataset=ds, seed=3),
        lambda ds: RepeatFactorSampler(dataset=ds, seed=3, threshold=1.0, rounding="stochastic"),
        lambda ds: RepeatFactorSampler(dataset=ds, seed=3, threshold=1.0, rounding="ceil"),
    ],
)
def test_resume_by_replaying_set_epoch_and_skipping(factory) -> None:
    first = factory(Toy())
    streams = {}
    for e in range(3):
        first.set_epoch(e)
        streams[e] = list(first)
    resumed = factory(Toy())  # a new process after preemption at epoch 2, 3 indices consumed
    resumed.set_epoch(2)
    assert list(iter(resumed))[3:] == streams[2][3:]
    assert len(resumed) == len(streams[2])


def test_random_sampler_is_a_permutation_per_epoch() -> None:
    s = RandomSampler(dataset=list(range(50)), seed=1)
    orders = []
    for e in range(3):
        s.set_epoch(e)
        order = list(s)
        assert sorted(order) == list(range(50)) and len(s) == 50
        orders.append(order)
    assert orders[0] != orders[1]


def test_bad_options_one_line() -> None:
    for kwargs in ({"rounding": "floor"}, {"threshold": -1.0}):
        with pytest.raises(ValueError) as err:
            RepeatFactorSampler(dataset=Toy(), seed=0, **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError):
        RandomSampler(dataset=Toy(), seed=-1).indices()


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 11), st.integers(1, 6)), max_size=60),
    threshold=st.sampled_from([0.0, 1e-3, 0.05, 0.3, 1.0, 3.0]),
)
def test_vectorised_equals_per_image_loop(data: list[tuple[int, int]], threshold: float) -> None:
    num_images = 12
    image_index = np.array([i for i, _ in data], dtype=np.int64)
    labels = np.array([c for _, c in data], dtype=np.int64)
    per_image: list[list[int]] = [[] for _ in range(num_images)]
    for i, c in data:
        per_image[i].append(c)
    fast = repeat_factors(image_index, labels, num_images=num_images, num_classes=6, threshold=threshold)
    assert np.array_equal(fast, repeat_factors_loop(per_image, threshold=threshold))
