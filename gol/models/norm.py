"""``FrozenStatsBatchNorm2d``: BatchNorm with frozen running statistics and a trainable affine transform.

mmdetection 2.21's ResNet in the official configs (``configs/_base_/models/mask_rcnn_r50_fpn.py``:
``norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True``) keeps every BatchNorm in eval mode while training
(``ResNet.train`` in ``mmdet/models/backbones/resnet.py``), so the ImageNet running mean and variance are used and
never updated, while the affine weight and bias are parameters that train; ``frozen_stages=1`` then stops the
gradient of the stem and ``layer1`` (``ResNet._freeze_stages``). torchvision's ``FrozenBatchNorm2d`` freezes the
affine transform too. This layer computes the same function as either (``x * w / sqrt(v + eps) + b - m * w /
sqrt(v + eps)`` per channel) in training and eval mode alike; only ``weight`` and ``bias`` are ``nn.Parameter``.
It reads and writes the same state_dict keys, so ImageNet classifier files (with or without BatchNorm's
``num_batches_tracked``) load into it.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d


class FrozenStatsBatchNorm2d(FrozenBatchNorm2d):
    """``FrozenBatchNorm2d`` whose ``weight`` and ``bias`` (C,) are trainable parameters.

    ``running_mean`` and ``running_var`` (C,) stay buffers and are never updated. Freezing a stage (as
    ``trainable_backbone_layers`` does) sets ``requires_grad=False`` on its ``weight`` and ``bias`` like on its
    convolutions.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance (BatchNorm's 1e-5).
    """

    weight: nn.Parameter
    bias: nn.Parameter

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__(num_features, eps=eps)
        # The parent's identity buffers become parameters with the same initial values.
        del self._buffers["weight"], self._buffers["bias"]
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
