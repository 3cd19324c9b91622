"""Hybrid Task Cascade R101 without the semantic branch (the paper's H-R101), built from torchvision's parts.

The official GOL configs (``configs/activations/htc_r101_4x4_1x_softmax.py`` and
``gumbel/gumbel_htc_r101_4x4_1x.py``) inherit an ``htc_without_semantic_r50_fpn_1x_lvis_v1`` base that the
repository does not ship; its name and mmdetection's ``configs/htc/htc_without_semantic_r50_fpn_1x_coco.py`` make
it HTC without the semantic branch (LVIS has no stuff annotations) on ResNet-101: everything of the Cascade Mask
R-CNN R101 (``gol.models.cascade``: backbone, FPN, RPN with 2000 training proposals, three 2FC-1024 box stages
at IoU 0.5 / 0.6 / 0.7 with class-agnostic smooth-L1 regression, stage weights 1 / 0.5 / 0.25, one classification
loss per stage sharing the one Activation, Cascade's test-time score ensemble), with the RoI heads of
``gol.models.htc_heads``: interleaved box and mask execution and the mask information flow (one 1x1 convolution
per stage after the first).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from torchvision.models.detection import MaskRCNN

from gol.models.cascade import build_cascade_r101_fpn, r101_cascade
from gol.models.htc_heads import HTCRoIHeads

HTC_LABEL = "Hybrid Task Cascade ResNet-101 FPN"
MASK_CHANNELS = 256  # HTCMaskHead: conv_out_channels 256, as every cascade mask head


@functools.wraps(build_cascade_r101_fpn, assigned=("__module__", "__annotations__"))
def build_htc_r101_fpn(**arguments: Any) -> MaskRCNN:
    """Hybrid Task Cascade ResNet-101 FPN without the semantic branch (the paper's H-R101).

    Takes exactly ``build_cascade_r101_fpn``'s arguments (``inspect.signature`` reports that signature), with the
    same defaults and meanings; ``weights`` is a whole HTC state_dict saved by gol (mmdetection's checkpoints do not
    load into torchvision modules; the class-dependent layers are re-initialised when K differs).
    """
    bound = inspect.signature(build_cascade_r101_fpn).bind(**arguments)  # the cascade's TypeError for a bad name
    bound.apply_defaults()
    heads = functools.partial(HTCRoIHeads, mask_channels=MASK_CHANNELS)
    return r101_cascade(dict(bound.arguments), heads=heads, label=HTC_LABEL)
