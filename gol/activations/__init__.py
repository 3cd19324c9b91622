"""Classification activations: sigmoid, softmax, Gumbel, probit and the learnable APA (``aglu``).

Shape shorthand:
    R: RoIs (rows of the classifier output).
    K: foreground categories; label k in 1..K, label 0 is background (torchvision convention).
    C: width of a logit tensor (K + 1 with a background column at index 0, or K without one).

One ``Activation`` object per method serves both the training loss and test-time scoring, so the two cannot
drift apart. Every function here is elementwise (softmax: over the last dimension), computes in at least
float32 (bfloat16/float16 inputs, e.g. under autocast, are upcast) and is safe at any finite logit:

========  ==========================  ===============================  ===============================
name      p(q)                        log p                            log (1 - p)
========  ==========================  ===============================  ===============================
sigmoid   1 / (1 + exp(-q))           logsigmoid(q)                    logsigmoid(-q)
gumbel    exp(-exp(-q))               -exp(-q)                         log(-expm1(-exp(-q)))
probit    Phi(q) (normal CDF)         log_ndtr(q)                      log_ndtr(-q)
aglu      (1 + l e^{-k q})^{-1/l}     -softplus(log l - k q) / l       log(-expm1(log p)), series near 0
softmax   softmax(q)                  log_softmax(q)                   (not a binary activation)
========  ==========================  ===============================  ===============================

The Gumbel activation is the CDF of the standard Gumbel distribution (GOL paper, eq. 1). Its gradient, and
that of the probit, are supplied in closed form (paper eq. 3 for Gumbel; ``sqrt(2/pi) / erfcx(-q/sqrt 2)``
for d log Phi / dq) because the autograd chains of the naive forms overflow or lose all precision in the
tails (torch's own ``log_ndtr`` backward is 6x off at q = -1e4 in float32).

Classifier initialisation (``init_classifier``) follows the official configs: every weight of the last
classification layer is set to a constant and every bias to a constant chosen so that the initial
foreground probability is small (paper-notes section 2, "Classifier initialisation").

A binary activation also owns its binary cross-entropy (``binary_cross_entropy``, ``binary_cross_entropy_sum``)
in both ``Numerics``: log space by default, the official clamps and probability-space BCE in ``official``;
Gumbel's stable form is one fused kernel (``gumbel_fused``). Losses accept activations by ``kind``.

Modules: ``base`` (the ``Activation`` object, ``Numerics``), ``functions`` (pure elementwise maths),
``methods`` (the four fixed activations), ``apa`` (the learnable APA / AGLU activation, its parameters in an
``ActivationParameters`` module), ``gumbel_fused`` (the fused Gumbel BCE), ``calibration`` (FRACAL's test-time
rescoring of an activation's scores, ``calibration=fracal``).
"""

from gol.activations.apa import APAParameters, apa_log_prob, apa_log_survival, apa_official_prob, apa_prob
from gol.activations.base import (
    ACTIVATIONS,
    Activation,
    ActivationParameters,
    BinaryActivation,
    Numerics,
    activation_scalars,
    get_activation,
    one_hot_targets,
)
from gol.activations.functions import (
    gumbel_log_prob,
    gumbel_log_survival,
    gumbel_prob,
    probit_log_prob,
    probit_log_survival,
    probit_prob,
    upcast_logits,
)
from gol.activations.methods import AGLU, Gumbel, Probit, Sigmoid, Softmax

__all__ = [
    "ACTIVATIONS",
    "AGLU",
    "APAParameters",
    "Activation",
    "ActivationParameters",
    "BinaryActivation",
    "Gumbel",
    "Numerics",
    "Probit",
    "Sigmoid",
    "Softmax",
    "activation_scalars",
    "apa_log_prob",
    "apa_log_survival",
    "apa_official_prob",
    "apa_prob",
    "get_activation",
    "gumbel_log_prob",
    "gumbel_log_survival",
    "gumbel_prob",
    "one_hot_targets",
    "probit_log_prob",
    "probit_log_survival",
    "probit_prob",
    "upcast_logits",
]
