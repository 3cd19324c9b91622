"""Classification losses for the RoI head: CE, EQL, EQLv2, Federated, DropLoss, GOL and Seesaw.

Shape shorthand:
    R: RoIs in the step. K: foreground categories. Labels are int64 in [0, K], 0 = background (torchvision).
    Logit layouts (``loss.num_logits``):
        K + 1   background at column 0, column k is label k          CrossEntropyLoss (default), EQLv2Loss
        K       no background logit, column k is label k + 1         EQLLoss, FederatedLoss, DropLoss,
                                                                     CrossEntropyLoss(background_column=False)
        K + 2   [background-objectness, z_1..z_K, object-objectness] SeesawLoss

Using the losses in your own detector::

    from gol.activations import Gumbel
    from gol.losses import DropLoss

    loss = DropLoss(activation=Gumbel(), num_classes=K, stats=stats)   # GOL (lambda 0.0011, LVIS v1)
    cls_score = nn.Linear(1024, loss.num_logits)
    loss.init_classifier(cls_score)              # official init: weight 0.001, bias -2 for Gumbel
    value = loss(cls_score(features), labels)    # training; scalar, sum over classes / mean over RoIs
    probs = loss.scores(cls_score(features))     # test time; (R, K) in [0, 1], column k is label k + 1

``stats`` is a ``gol.data.stats.CategoryStats`` of the training split (image counts; EQL, Federated and
DropLoss need it). Every loss is an ``nn.Module`` (a ``ClassificationLoss``); its dataset-derived tensors are
buffers and its random stream (Federated, DropLoss) is extra state, so ``state_dict`` checkpoints them. The
stochastic losses draw per data-parallel rank (``set_stream_rank``) and per group of ``images_per_group``
images, given ``loss(logits, labels, rois_per_image=...)`` (``gol.losses.rng``, ``gol.losses.groups``).
Each loss also exists as a pure function with keyword-only options (``eql_loss``, ``drop_loss``, ...).

Valid (loss, activation) pairs: ``VALID_PAIRS`` / ``check_pair``. Binary losses take ``numerics="stable"``
(default: log-space, exact gradients, fast fused Gumbel kernel) or ``"official"`` (the official clamps and
probability-space BCE, for bit-faithful reproduction); see ``Numerics``.
"""

from gol.activations import Numerics
from gol.losses.base import ClassificationLoss, InvalidPairError
from gol.losses.binary import binary_cross_entropy, positive_columns
from gol.losses.cross_entropy import CrossEntropyLoss, binary_ce_loss, softmax_ce_loss
from gol.losses.droploss import DropLoss, drop_loss, drop_ratio, droploss_drop, group_drop_ratios
from gol.losses.eql import EQLLoss, eql_drop, eql_loss, tail_classes
from gol.losses.eqlv2 import EQLv2Loss, eqlv2_gradient_sums, eqlv2_loss, eqlv2_weights
from gol.losses.federated import FederatedLoss, federated_classes, federated_loss
from gol.losses.pairs import LOSSES, VALID_PAIRS, check_pair, valid_pairs_text
from gol.losses.rng import SeededLoss, set_stream_rank
from gol.losses.seesaw import SeesawLoss, seesaw_loss, seesaw_scores

__all__ = [
    "LOSSES",
    "VALID_PAIRS",
    "ClassificationLoss",
    "CrossEntropyLoss",
    "DropLoss",
    "EQLLoss",
    "EQLv2Loss",
    "FederatedLoss",
    "InvalidPairError",
    "Numerics",
    "SeededLoss",
    "SeesawLoss",
    "binary_ce_loss",
    "binary_cross_entropy",
    "check_pair",
    "drop_loss",
    "drop_ratio",
    "droploss_drop",
    "eql_drop",
    "eql_loss",
    "eqlv2_gradient_sums",
    "eqlv2_loss",
    "eqlv2_weights",
    "federated_classes",
    "federated_loss",
    "group_drop_ratios",
    "positive_columns",
    "seesaw_loss",
    "seesaw_scores",
    "set_stream_rank",
    "softmax_ce_loss",
    "tail_classes",
    "valid_pairs_text",
]
