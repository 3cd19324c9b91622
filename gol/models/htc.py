"""Hybrid Task Cascade (HTC) R101: declared for the activation x detector table, refused until it exists.

The paper's H-R101 row (Figure 1; the official ``htc_without_semantic`` configs) needs what Cascade Mask R-CNN
lacks: the interleaved execution (each stage's mask branch on the boxes its own box branch has just regressed) and
the mask information flow that feeds each stage's mask features into the next one. Neither exists in gol, so
``conf/detector/htc_r101_fpn.yaml`` composes (with the Cascade R101 options, so that a table's overrides apply to
the whole row) but cannot be built or trained. ``check_detector_available`` lets config validation refuse it
before any data is loaded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from hydra.utils import get_method
from torchvision.models.detection import MaskRCNN

from gol.models.cascade import build_cascade_r101_fpn

HTC_UNAVAILABLE = (
    "detector=htc_r101_fpn (Hybrid Task Cascade) is not implemented: gol has no interleaved box and mask "
    "execution and no mask information flow between stages; use detector=cascade_r101_fpn for the closest available row"
)


class DetectorUnavailableError(ValueError):
    """A detector option that is declared (so that tables name it) but cannot be built."""


@functools.wraps(build_cascade_r101_fpn, assigned=("__module__", "__annotations__"))
def build_htc_r101_fpn(**options: Any) -> MaskRCNN:
    """Refuses (``DetectorUnavailableError``, with ``HTC_UNAVAILABLE``) before building anything.

    Its signature, as ``inspect.signature`` reports it, is Cascade R101's (``functools.wraps``), so the
    ``htc_r101_fpn`` config carries exactly the cascade's options.
    """
    raise DetectorUnavailableError(HTC_UNAVAILABLE)


# Builders that are declared but refuse, with the one-line reason.
UNAVAILABLE: dict[Callable[..., MaskRCNN], str] = {build_htc_r101_fpn: HTC_UNAVAILABLE}


def check_detector_available(target: str) -> None:
    """Raise ``DetectorUnavailableError`` if the detector config's ``_target_`` names a refusing builder.

    Cheap (imports the target, builds nothing), so config validation can call it before any data is loaded.
    A target that cannot be imported is left to ``instantiate``, which reports it.
    """
    try:
        builder = get_method(target)
    except (ImportError, ValueError):
        return
    reason = UNAVAILABLE.get(builder)
    if reason is not None:
        raise DetectorUnavailableError(reason)
