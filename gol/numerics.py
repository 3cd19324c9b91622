"""``Numerics``: how a binary loss evaluates its activation (torch-free, so the config schemas can use it)."""

from __future__ import annotations

import enum

__all__ = ["Numerics"]


class Numerics(str, enum.Enum):
    """How a binary loss evaluates its activation (only Gumbel and probit differ between the modes).

    official: the official code's formulas, clamps included: Gumbel logits clamped to [-4, 10], probit logits
        to [-5, 5], binary cross-entropy on probabilities, and for the plain Gumbel CE head the reduced loss
        clamped to [0, 20]. Gradients are zero wherever a clamp is active, and a positive Gumbel term gets
        almost none below q = -3.32 either: there eta < 1e-12, where torch's BCE backward floors p (1 - p)
        at 1e-12 (so the gradient is eta t / 1e-12 instead of t).
    stable: log-space closed forms without clamps: the loss and its gradient (GOL paper eq. 3) are exact for
        Gumbel logits >= -10 and probit/sigmoid logits everywhere; below -10 the positive Gumbel term
        exp(-q) continues along its tangent so that it stays finite (gradient magnitude capped at e^10).

    Sigmoid and softmax are computed the same way in both modes (the official code already uses the stable
    ``binary_cross_entropy_with_logits`` / ``cross_entropy``).

    ``stable`` is the default: it equals ``official`` wherever no official clamp is active (training starts at
    the bias -2 and positives move up, so this is where training lives), it does not silence the gradient of
    a badly wrong positive (q < -4) or of a confident false positive (q > 10), it never zeroes a whole batch
    (the GumbelCE loss clamp), and its fused Gumbel kernel is several times faster. Use ``official`` to
    reproduce the released runs operation for operation.
    """

    # Lower-case member names: OmegaConf validates Enum fields by member name, so YAML reads `numerics: stable`.
    official = "official"
    stable = "stable"

    @classmethod
    def _missing_(cls, value: object) -> Numerics:
        raise ValueError(f"numerics must be 'stable' or 'official', got {value!r}")
