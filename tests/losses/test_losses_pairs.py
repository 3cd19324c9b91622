"""The table of valid (loss, activation) pairs, refused at compose time (check_pair) and at construction."""

from __future__ import annotations

import pytest

from gol.activations import ACTIVATIONS, Gumbel, Softmax, get_activation
from gol.losses import LOSSES, VALID_PAIRS, DropLoss, EQLLoss, InvalidPairError, check_pair, valid_pairs_text

EXPECTED = {
    "ce": {"softmax", "sigmoid", "gumbel", "probit", "aglu"},
    "eql": {"sigmoid", "gumbel", "probit", "aglu"},
    "eqlv2": {"sigmoid", "gumbel", "probit", "aglu"},
    "federated": {"sigmoid", "gumbel", "probit", "aglu"},
    "droploss": {"sigmoid", "gumbel", "probit", "aglu"},
    "seesaw": {"softmax"},
}


def test_table() -> None:
    assert {k: set(v) for k, v in VALID_PAIRS.items()} == EXPECTED


@pytest.mark.parametrize("loss", sorted(EXPECTED))
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_check_pair_by_name_class_and_object(loss: str, act: str) -> None:
    valid = act in EXPECTED[loss]
    for activation in (act, type(get_activation(act)), get_activation(act)):
        if valid:
            check_pair(activation, loss)
        else:
            with pytest.raises(InvalidPairError) as info:
                check_pair(activation, loss)
            message = str(info.value)
            assert "\n" not in message
            assert f"activation={act} cannot be used with loss={loss}" in message
            assert valid_pairs_text() in message


def test_check_pair_with_classes_follows_the_constructor() -> None:
    check_pair("sigmoid", DropLoss)  # DropLoss takes any binary activation (recipe=gol chooses Gumbel)
    with pytest.raises(InvalidPairError, match="activation=softmax cannot be used with loss=EQLLoss"):
        check_pair(Softmax, EQLLoss)
    with pytest.raises(InvalidPairError, match="unknown loss"):
        check_pair("gumbel", "focal")
    with pytest.raises(InvalidPairError, match="unknown activation"):
        check_pair("relu", "ce")


def test_constructors_refuse_invalid_pairs(make_stats) -> None:
    stats = make_stats([1, 2, 3])
    for cls in LOSSES.values():
        for act in ACTIVATIONS:
            if act in cls.valid_activations():
                continue
            with pytest.raises(InvalidPairError, match=f"{cls.__name__} cannot use the {act} activation"):
                cls(activation=get_activation(act), num_classes=3, stats=stats)
    assert Gumbel.name in VALID_PAIRS["droploss"]
