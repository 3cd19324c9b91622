"""The class-dependent last layers of the box and mask heads.

Shape shorthand: R = RoIs, D = box-head feature width, K = foreground classes, L = ``cls_loss.num_logits``
(K + 1 with background at column 0, K, or K + 2, as the classification loss decides). Box deltas and mask
logits are class-specific over K + 1 slots with background at index 0 (torchvision's layout), whatever L is.

Layer names (``cls_score``, ``bbox_pred``, ``conv5_mask``, ``mask_fcn_logits``) are torchvision's, so detector
weights trained elsewhere (COCO Mask R-CNN) load by name and only these class-dependent layers are skipped.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import maskrcnn_inference

from gol.models.normed import NormedConv2d, NormedLinear, l2_normalise

if TYPE_CHECKING:
    from gol.losses.base import ClassificationLoss

# GOL's normalised mask predictor (paper-notes section 2: NormedConv2d, temperature 20).
MASK_TEMPERATURE = 20.0
# mmdetection's NormedLinear.init_weights: weights N(0, 0.01^2), bias 0.
NORMED_CLASSIFIER_INIT_STD = 0.01


class GolBoxPredictor(nn.Module):
    """Classifier of width ``cls_loss.num_logits`` plus box regression: class-specific over K + 1 slots, or
    ``class_agnostic`` (4 deltas per RoI, as the official Cascade configs' stages).

    The classifier is a plain ``nn.Linear`` with the loss's initialisation (``cls_loss.init_classifier``), or a
    ``NormedLinear`` when ``classifier_temperature`` is set, initialised as mmdetection's ``NormedLinear`` always
    is: weights N(0, 0.01^2), bias 0. (mmcv runs a child module's own ``init_weights`` after the head's
    ``init_cfg``, so the official Seesaw and EQL-normed-classifier runs start there whatever their ``init_cfg``
    says; a constant init would make every class's normalised weight vector identical.)
    """

    def __init__(
        self,
        in_channels: int,
        *,
        cls_loss: ClassificationLoss,
        classifier_temperature: float | None = None,
        class_agnostic: bool = False,
    ) -> None:
        super().__init__()
        num_logits = int(cls_loss.num_logits)
        if classifier_temperature is None:
            self.cls_score: nn.Linear = nn.Linear(in_channels, num_logits)
            cls_loss.init_classifier(self.cls_score)
        else:
            self.cls_score = NormedLinear(in_channels, num_logits, temperature=classifier_temperature)
            nn.init.normal_(self.cls_score.weight, mean=0.0, std=NORMED_CLASSIFIER_INIT_STD)
            nn.init.zeros_(self.cls_score.bias)
        self.bbox_pred = nn.Linear(in_channels, 4 if class_agnostic else (cls_loss.num_classes + 1) * 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(R, D) or (R, D, 1, 1) features -> class logits (R, L) and box deltas (R, (K + 1) * 4) or (R, 4)."""
        if x.dim() == 4 and tuple(x.shape[2:]) != (1, 1):
            raise ValueError(f"box predictor expects (R, D) or (R, D, 1, 1) features, got {tuple(x.shape)}")
        x = x.flatten(start_dim=1)  # (R, D)
        return self.cls_score(x), self.bbox_pred(x)


def build_mask_predictor(in_channels: int, dim_reduced: int, num_classes: int, *, normed: bool) -> nn.Sequential:
    """torchvision's ``MaskRCNNPredictor`` (2x deconv, ReLU, 1x1 logits over K + 1 classes).

    ``num_classes`` is K. With ``normed`` the 1x1 logit layer is ``NormedConv2d`` (temperature 20, bias kept,
    bias initialised to 0 as in mmdet's FCN mask head).
    """
    logits: nn.Conv2d
    if normed:
        logits = NormedConv2d(dim_reduced, num_classes + 1, 1, temperature=MASK_TEMPERATURE)
    else:
        logits = nn.Conv2d(dim_reduced, num_classes + 1, 1)
    predictor = nn.Sequential(
        OrderedDict(
            [
                ("conv5_mask", nn.ConvTranspose2d(in_channels, dim_reduced, 2, 2, 0)),
                ("relu", nn.ReLU(inplace=True)),
                ("mask_fcn_logits", logits),
            ]
        )
    )
    for name, param in predictor.named_parameters():
        if name.endswith("weight"):
            nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")
    if normed and logits.bias is not None:
        nn.init.zeros_(logits.bias)
    return predictor


def mask_probabilities(predictor: nn.Module, mask_features: Tensor, labels: list[Tensor]) -> list[Tensor]:
    """Test time: each detection's mask probabilities for its own class, per image (N_i, 1, 28, 28).

    ``mask_features`` (M, D, 14, 14) are the mask head's outputs for the M detections of all images, ``labels``
    their classes per image. Equals torchvision's ``maskrcnn_inference(predictor(mask_features), labels)``, but a
    predictor from :func:`build_mask_predictor` computes its 1x1 logit layer for the M predicted classes only, not
    for all K + 1 (on LVIS, 1204 channels of 28 x 28 per detection, almost all of them discarded). Any other
    predictor takes torchvision's path.
    """
    layers = dict(predictor.named_children())
    if list(layers) != ["conv5_mask", "relu", "mask_fcn_logits"] or not _is_pointwise(layers["mask_fcn_logits"]):
        return maskrcnn_inference(predictor(mask_features), labels)
    logits_layer = layers["mask_fcn_logits"]
    hidden = layers["relu"](layers["conv5_mask"](mask_features))  # (M, D', 28, 28)
    assert isinstance(logits_layer, nn.Conv2d)  # _is_pointwise: a 1x1 convolution
    weight = logits_layer.weight[:, :, 0, 0]  # (K + 1, D')
    if isinstance(logits_layer, NormedConv2d):
        weight = l2_normalise(weight, dim=1)
        hidden = l2_normalise(hidden, dim=1) * logits_layer.temperature
    classes = torch.cat(labels)  # (M,)
    logits = torch.einsum("mdhw,md->mhw", hidden, weight[classes])  # (M, 28, 28)
    if logits_layer.bias is not None:
        logits = logits + logits_layer.bias[classes][:, None, None]
    return list(logits.sigmoid()[:, None].split([len(label) for label in labels]))


def _is_pointwise(layer: nn.Module) -> bool:
    """A plain 1x1 convolution (stride 1, no padding, one group): one linear map per pixel."""
    return (isinstance(layer, nn.Conv2d) and tuple(layer.kernel_size) == (1, 1) and tuple(layer.stride) == (1, 1)
            and tuple(layer.padding) == (0, 0) and layer.groups == 1)  # fmt: skip
