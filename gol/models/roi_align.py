"""RoI pooling over FPN levels as mmdetection 2.21 does it (the official configs' ``SingleRoIExtractor``).

Shape shorthand: R = RoIs of the batch (all images concatenated), C = FPN channels, S = output side (7 or 14).

Against torchvision's ``MultiScaleRoIAlign`` (``aligned=False, sampling_ratio=2``):

- RoIAlign: the official configs build mmcv's ``RoIAlign(output_size, sampling_ratio=0)`` per level
  (``configs/_base_/models/mask_rcnn_r50_fpn.py``; ``BaseRoIExtractor.build_roi_layers`` in
  ``mmdet/models/roi_heads/roi_extractors/base_roi_extractor.py`` adds ``spatial_scale=1 / stride``), whose
  ``aligned`` defaults to True (mmcv 1.4 ``mmcv/ops/roi_align.py``): box corners are shifted by half a feature
  pixel, a RoI is not widened to at least one feature pixel, and each bin takes ``ceil(bin side)`` samples per
  axis (adaptive) instead of 2. mmcv's kernel (``roi_align_cuda_kernel.cuh``) and ``torchvision.ops.roi_align``
  compute the same function for the same arguments, so the latter is used with ``aligned=True, sampling_ratio=0``.
- Level of a RoI (``SingleRoIExtractor.map_roi_levels``, ``single_level_roi_extractor.py``, ``finest_scale=56``):
  ``floor(log2(sqrt(w h) / 56 + 1e-6))`` clamped to [0, 3], with ``w h`` the plain box area (no +1).
  torchvision's ``LevelMapper`` (canonical scale 224 at level 4, levels 2-5) is ``floor(log2(sqrt(w h) / 56) +
  1e-6)``: the same level except for RoIs within about 1e-6 (relative) of a level boundary, where the epsilon,
  inside the logarithm in mmdet and outside it in torchvision, can tip them apart. This module uses mmdet's form.
- Strides: mmdet's ``featmap_strides=[4, 8, 16, 32]`` are fixed; torchvision infers each level's scale from the
  feature and largest image sizes (rounded to a power of 2, the same values for an FPN over ResNet).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign, roi_align

# mmdet SingleRoIExtractor: RoIs smaller than 2 * 56 px (sqrt of the area) go to the finest level.
FINEST_SCALE = 56.0
# Added inside the logarithm, as mmdet does.
LEVEL_EPS = 1e-6


def fpn_roi_levels(boxes: Tensor, *, num_levels: int, finest_scale: float = FINEST_SCALE) -> Tensor:
    """mmdet's level of each RoI.

    Args:
        boxes: (R, 4) float, (x1, y1, x2, y2) in input-image pixels.
        num_levels: number of pyramid levels pooled from; levels are clamped to [0, num_levels - 1].
        finest_scale: RoIs with sqrt(area) under ``2 * finest_scale`` go to level 0.

    Returns:
        (R,) int64 level indices.
    """
    scale = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))  # (R,)
    levels = torch.floor(torch.log2(scale / finest_scale + LEVEL_EPS))  # (R,)
    return levels.clamp(min=0, max=num_levels - 1).to(torch.int64)


class AlignedMultiScaleRoIAlign(MultiScaleRoIAlign):
    """mmdet's FPN RoI pooling: aligned RoIAlign with adaptive sampling on the level chosen by ``fpn_roi_levels``.

    A ``MultiScaleRoIAlign`` (so torchvision's ``MaskRCNN`` accepts it) with the same call: features as an ordered
    dict, per-image boxes (R_i, 4) in input-image pixels, and the image shapes (unused: the strides are fixed, as
    mmdet's ``featmap_strides``). Returns (R, C, S, S) in the order of the concatenated boxes.

    Args:
        featmap_names: the pooled feature levels, finest first.
        output_size: S (7 for the box head, 14 for the mask head).
        strides: the stride of each level in input pixels (one per name).
        finest_scale: see ``fpn_roi_levels``.
    """

    def __init__(
        self,
        featmap_names: Sequence[str],
        output_size: int,
        *,
        strides: Sequence[int],
        finest_scale: float = FINEST_SCALE,
    ) -> None:
        if len(strides) != len(featmap_names) or min(strides) <= 0:
            raise ValueError(
                f"give one positive stride per feature level: {list(featmap_names)} with strides {list(strides)}"
            )
        super().__init__(list(featmap_names), output_size, sampling_ratio=0)
        self.strides = tuple(int(s) for s in strides)
        self.finest_scale = float(finest_scale)

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        features = [x[name] for name in self.featmap_names]
        concat = torch.cat(boxes)  # (R, 4)
        image_index = torch.cat([torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)])  # (R, 1)
        rois = torch.cat([image_index, concat], dim=1)  # (R, 5)
        levels = fpn_roi_levels(concat, num_levels=len(features), finest_scale=self.finest_scale)  # (R,)
        first = features[0]
        result = first.new_zeros((len(rois), first.shape[1], *self.output_size))  # (R, C, S, S)
        for level, (feature, stride) in enumerate(zip(features, self.strides)):
            index = torch.where(levels == level)[0]
            pooled = roi_align(
                feature,
                rois[index],
                output_size=self.output_size,
                spatial_scale=1.0 / stride,
                sampling_ratio=0,
                aligned=True,
            )  # (R_level, C, S, S)
            # Under autocast the levels may come in different dtypes (as in torchvision's pooler).
            result[index] = pooled.to(result.dtype)
        return result

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(featmap_names={self.featmap_names}, output_size={self.output_size}, "
            f"strides={self.strides}, finest_scale={self.finest_scale}, aligned=True, sampling_ratio=0)"
        )
