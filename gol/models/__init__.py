"""Mask R-CNN detectors whose classification loss and test-time scores come from a ``gol.losses`` module.

Builders (keyword-only, see ``gol.models.builders``): ``build_tiny``, ``build_maskrcnn_r50_fpn``,
``build_maskrcnn_r50_fpn_v2``, ``build_maskrcnn_r101_fpn``, ``build_maskrcnn_x101_fpn``. Each returns a torchvision
``MaskRCNN`` whose ``roi_heads`` is ``GolRoIHeads`` and whose ``transform`` is ``GolTransform``.

``build_cascade_r101_fpn`` (``gol.models.cascade``) returns a ``MaskRCNN`` whose ``roi_heads`` is
``CascadeRoIHeads`` (three box stages, one classification loss per stage sharing one activation).
``build_htc_r101_fpn`` (``gol.models.htc``) is the Hybrid Task Cascade without the semantic branch: the cascade with
``HTCRoIHeads`` (interleaved box and mask execution, the mask information flow).
"""

from gol.models.builders import (
    build_maskrcnn_r50_fpn,
    build_maskrcnn_r50_fpn_v2,
    build_maskrcnn_r101_fpn,
    build_maskrcnn_x101_fpn,
)
from gol.models.cascade import build_cascade_r101_fpn
from gol.models.cascade_heads import CascadeRoIHeads
from gol.models.htc import build_htc_r101_fpn
from gol.models.htc_heads import HTCRoIHeads
from gol.models.normed import NormedConv2d, NormedLinear
from gol.models.predictors import GolBoxPredictor
from gol.models.roi_heads import GolRoIHeads
from gol.models.tiny import build_tiny
from gol.models.transform import GolTransform
from gol.models.weights import WeightsMismatchError, WeightsNotFoundError

__all__ = [
    "CascadeRoIHeads",
    "GolBoxPredictor",
    "GolRoIHeads",
    "GolTransform",
    "HTCRoIHeads",
    "NormedConv2d",
    "NormedLinear",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "build_cascade_r101_fpn",
    "build_htc_r101_fpn",
    "build_maskrcnn_r50_fpn",
    "build_maskrcnn_r50_fpn_v2",
    "build_maskrcnn_r101_fpn",
    "build_maskrcnn_x101_fpn",
    "build_tiny",
]
