"""Mask R-CNN detectors whose classification loss and test-time scores come from a ``gol.losses`` module.

Builders (keyword-only, see ``gol.models.builders``): ``build_tiny``, ``build_maskrcnn_r50_fpn``,
``build_maskrcnn_r50_fpn_v2``, ``build_maskrcnn_r101_fpn``, ``build_maskrcnn_x101_fpn``. Each returns a torchvision
``MaskRCNN`` whose ``roi_heads`` is ``GolRoIHeads`` and whose ``transform`` is ``GolTransform``.
"""

from gol.models.builders import (
    build_maskrcnn_r50_fpn,
    build_maskrcnn_r50_fpn_v2,
    build_maskrcnn_r101_fpn,
    build_maskrcnn_x101_fpn,
)
from gol.models.normed import NormedConv2d, NormedLinear
from gol.models.predictors import GolBoxPredictor
from gol.models.roi_heads import GolRoIHeads
from gol.models.tiny import build_tiny
from gol.models.transform import GolTransform
from gol.models.weights import WeightsMismatchError, WeightsNotFoundError

__all__ = [
    "GolBoxPredictor",
    "GolRoIHeads",
    "GolTransform",
    "NormedConv2d",
    "NormedLinear",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "build_maskrcnn_r101_fpn",
    "build_maskrcnn_r50_fpn",
    "build_maskrcnn_r50_fpn_v2",
    "build_maskrcnn_x101_fpn",
    "build_tiny",
]
