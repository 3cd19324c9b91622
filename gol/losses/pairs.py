"""Which activation goes with which loss, by the names used in the config groups.

Binary losses (EQL, EQLv2, Federated, DropLoss) take every binary activation; softmax goes with plain CE and Seesaw
(each loss names the activation kinds it takes). GOL is not a loss but a recipe (``recipe=gol``: DropLoss with
the Gumbel activation and the official settings). The config layer calls ``check_pair`` before anything is
built; every loss constructor refuses an invalid activation too.
"""

from __future__ import annotations

import dataclasses

from hydra.utils import get_class

from gol.activations import ACTIVATIONS, Activation
from gol.config import loss as loss_schemas
from gol.losses.base import ClassificationLoss, InvalidPairError

__all__ = ["LOSSES", "VALID_PAIRS", "check_pair", "valid_pairs_text"]


def _losses() -> dict[str, type[ClassificationLoss]]:
    """Every loss option (``conf/loss/<name>.yaml``, schema ``<name>_schema`` in ``gol.config.loss``) and the class
    its ``_target_`` names: a new loss is its module, its schema and its YAML file, nothing else."""
    registry = {}
    for schema_name, schema in loss_schemas.SCHEMAS.items():
        target = next(f.default for f in dataclasses.fields(schema) if f.name == "_target_")
        registry[schema_name.removesuffix("_schema")] = get_class(str(target))
    return registry


LOSSES: dict[str, type[ClassificationLoss]] = _losses()

VALID_PAIRS: dict[str, tuple[str, ...]] = {name: cls.valid_activations() for name, cls in LOSSES.items()}


def valid_pairs_text() -> str:
    """One line listing the valid pairs, e.g. ``ce: softmax|sigmoid|gumbel|probit; eql: ...``."""
    return "; ".join(f"{loss}: {'|'.join(acts)}" for loss, acts in VALID_PAIRS.items())


def _activation_name(activation: Activation | type[Activation] | str) -> str:
    if isinstance(activation, str):
        name = activation
    elif isinstance(activation, Activation) or (isinstance(activation, type) and issubclass(activation, Activation)):
        name = activation.name
    else:
        raise InvalidPairError(f"activation must be an Activation or one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if name not in ACTIVATIONS:
        raise InvalidPairError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return name


def check_pair(
    activation: Activation | type[Activation] | str, loss: type[ClassificationLoss] | ClassificationLoss | str
) -> None:
    """Raise ``InvalidPairError`` (a ValueError) unless ``activation`` can be trained with ``loss``.

    Args:
        activation: an Activation (object or class) or its name: sigmoid, softmax, gumbel, probit.
        loss: a loss class/object or a loss option name: ce, eql, eqlv2, federated, droploss, seesaw.
    """
    act = _activation_name(activation)
    if isinstance(loss, str):
        if loss not in VALID_PAIRS:
            raise InvalidPairError(f"unknown loss {loss!r}; expected one of {sorted(VALID_PAIRS)}")
        label, allowed = loss, VALID_PAIRS[loss]
    elif isinstance(loss, ClassificationLoss) or (isinstance(loss, type) and issubclass(loss, ClassificationLoss)):
        label, allowed = (loss if isinstance(loss, type) else type(loss)).__name__, loss.valid_activations()
    else:
        raise InvalidPairError(f"loss must be a ClassificationLoss or one of {sorted(VALID_PAIRS)}, got {loss!r}")
    if act not in allowed:
        raise InvalidPairError(
            f"activation={act} cannot be used with loss={label}; valid pairs (loss: activations): {valid_pairs_text()}"
        )
