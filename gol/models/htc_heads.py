"""Hybrid Task Cascade RoI heads (Chen et al., CVPR 2019) without the semantic branch: ``CascadeRoIHeads`` plus
interleaved execution and the mask information flow.

Shape shorthand as ``gol.models.cascade_heads``: S stages, M pooled mask RoIs, C = D = 256 mask channels.

The official GOL configs name an ``htc_without_semantic_r50_fpn_1x_lvis_v1`` base (LVIS has no stuff
annotations), i.e. mmdetection 2.x's ``HybridTaskCascadeRoIHead`` with ``interleaved=True``,
``mask_info_flow=True`` and no semantic head (``configs/htc/htc_without_semantic_r50_fpn_1x_coco.py``;
``mmdet/models/roi_heads/htc_roi_head.py`` and ``mask_heads/htc_mask_head.py``). What differs from Cascade:

Interleaved execution (training): stage s's box branch runs on its samples as in Cascade, then its regression
refines them (ground truth and too-thin boxes dropped, as before the next stage); those refined boxes are matched
and sampled again at stage s's IoU (ground truth appended, 512 per image, 25% positive: mmdet's "re-assign and
sample 512 RoIs from 512 RoIs") and stage s's mask branch trains on the positives of that second sample. The next
stage's proposals are the same refined boxes, as in Cascade.

Mask information flow (training and test): on the same pooled RoIs x, stage 0's mask features are
``f_0 = head_0(x)`` and stage t's are ``f_t = head_t(x + relu(conv1x1_t(f_{t-1})))``: each stage's four 3x3 convs
see the previous stage's features through a 1x1 convolution with ReLU (``HTCMaskHead``'s ``conv_res``, a
``ConvModule`` whose default activation is ReLU; stage 0 has none, ``with_conv_res=False``). Stage t's mask
logits are its predictor on ``f_t``; in training the earlier heads run on stage t's RoIs and receive its mask
loss's gradient, as in mmdet. At test every stage's sigmoid mask of the final detections is computed along the one
chain and the S masks are averaged (``simple_test``'s ``merge_aug_masks``); box scores are Cascade's ensemble.

The 1x1 convolutions are ``mask_flow.{t-1}`` (t = 1..S-1), initialised as the mask convolutions (Kaiming normal,
fan-out, zero bias, as mmcv's ``ConvModule``).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from torch import Tensor, nn

from gol.models.cascade_heads import CascadeRoIHeads
from gol.models.roi_heads import MaskBranch


def flow_conv(channels: int) -> nn.Sequential:
    """One stage's information-flow layer: 1x1 convolution, ReLU (``HTCMaskHead.conv_res``)."""
    conv = nn.Conv2d(channels, channels, kernel_size=1)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    assert conv.bias is not None  # made with bias=True
    nn.init.zeros_(conv.bias)
    return nn.Sequential(conv, nn.ReLU(inplace=True))


class HTCRoIHeads(CascadeRoIHeads):
    """``CascadeRoIHeads`` with interleaved execution and the mask information flow (see the module docstring).

    Args (keyword-only): ``CascadeRoIHeads``' arguments, plus
        mask_channels: D, the mask heads' output width (the flow's 1x1 convolutions are D -> D).
    """

    interleaved: ClassVar[bool] = True

    def __init__(self, *, mask_channels: int, **cascade: Any) -> None:
        super().__init__(**cascade)
        self.mask_flow = nn.ModuleList(flow_conv(mask_channels) for _ in range(self.num_stages - 1))

    def flow_features(self, stage: int, pooled: Tensor) -> Tensor:
        """Stage ``stage``'s mask features (M, D, 14, 14) of pooled RoIs (M, C, 14, 14), through stages 0..stage."""
        return self._flow(pooled, stage + 1)[-1]

    def stage_mask_branch(self, stage: int) -> MaskBranch:
        """Stage ``stage``'s mask branch, its head being the chain of heads 0..stage (``flow_features``)."""
        head = functools.partial(self.flow_features, stage)
        return MaskBranch(self.mask_roi_pool, head, self.mask_predictor[stage])

    def stage_mask_features(self, pooled: Tensor) -> list[Tensor]:
        """Every stage's mask features (S x (M, D, 14, 14)) along the one information-flow chain."""
        return self._flow(pooled, self.num_stages)

    def _flow(self, pooled: Tensor, num_stages: int) -> list[Tensor]:
        """The first ``num_stages`` stages' mask features along the chain."""
        features: list[Tensor] = []
        for stage in range(num_stages):
            inputs = pooled if stage == 0 else pooled + self.mask_flow[stage - 1](features[-1])
            features.append(self.mask_head[stage](inputs))
        return features
