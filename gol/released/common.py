"""The settings the released mmdetection 2.21 configs share, by part (schedule, data, sampler, detector,
activation, loss); ``gol.released.tables`` puts each paper cell together from them."""

from __future__ import annotations

from gol.released.cell import Setting

GOL = "kostas1515/GOL"
DEV = "kostas1515/mmdetection_v2.21_dev"
MMDET = "open-mmlab/mmdetection v2.21"
ACT = f"{GOL} configs/activations"
GOLCFG = f"{GOL} configs/gol"


def schedule(
    epochs: int, *, batch: int = 16, warmup: int = 500, amp: bool = False, batch_text: str | None = None
) -> list[Setting]:
    steps = [8, 11] if epochs == 12 else [16, 22]
    src = f"{MMDET} configs/_base_/schedules/schedule_{'1x' if epochs == 12 else '2x'}.py"
    out = [
        Setting("schedule.epochs", epochs, f"runner max_epochs={epochs} ({src})"),
        Setting("schedule.steps", steps, f"lr_config step={steps}"),
        Setting("schedule.gamma", 0.1, "lr_config gamma 0.1 (mmcv default)"),
        Setting("schedule.lr", 0.02, "optimizer SGD lr=0.02"),
        Setting("schedule.momentum", 0.9, "optimizer momentum=0.9"),
        Setting("schedule.weight_decay", 0.0001, "optimizer weight_decay=0.0001"),
        Setting("schedule.grad_clip", None, "optimizer_config grad_clip=None"),
        Setting("schedule.warmup_iters", warmup, f"lr_config warmup='linear', warmup_iters={warmup}"),
        Setting("schedule.warmup_ratio", 0.001, "lr_config warmup_ratio=0.001"),
        Setting("schedule.ims_per_batch", batch, batch_text or _batch_text(batch)),
        Setting("schedule.amp", amp, "fp16=dict(loss_scale=512.)" if amp else "no fp16 (fp32)"),
    ]
    if batch != 16:
        out.append(Setting("schedule.scale_lr", False, f"lr 0.02 kept for the global batch of {batch}"))
    else:
        out += [
            Setting("schedule.base_batch", 16, "lr 0.02 is for the global batch of 16"),
            Setting("schedule.scale_lr", True, "lr 0.02 at 16 images (gol scales it when ims_per_batch differs)"),
        ]
    if amp:
        out.append(unmatched("fp16 static loss scale 512", "torch AMP scales the loss dynamically (GradScaler)"))
    return out


def unmatched(official: str, why: str) -> Setting:
    """A released setting ``gol`` does not reproduce (no key holds it)."""
    return Setting("", None, official, matched=False, why=why)


def _batch_text(batch: int) -> str:
    return "4 GPUs x samples_per_gpu=4" if batch == 16 else f"4 GPUs x samples_per_gpu={batch // 4}"


def data(version: str) -> list[Setting]:
    base = "1x_lvis_v1" if version == "v1" else "2x_lvis_v0.5"  # mmdetection has no 1x LVIS v0.5 base
    src = f"{MMDET} configs/lvis/mask_rcnn_r50_fpn_sample1e-3_mstrain_{base}.py"
    return [
        Setting("dataset._target_", "gol.data.build_lvis", f"LVISV1Dataset / LVISV05Dataset ({src})"),
        Setting("dataset.version", version, f"LVIS {version}"),
        Setting("dataset.train_sizes", [640, 672, 704, 736, 768, 800], "Resize img_scale (1333, 640..800), multiscale"),
        Setting("dataset.max_size", 1333, "Resize keep_ratio, longer side <= 1333"),
        Setting("dataset.test_size", 800, "test img_scale (1333, 800)"),
        Setting("dataset.flip_prob", 0.5, "RandomFlip flip_ratio=0.5"),
        Setting("eval.max_dets", 300, "LVIS evaluation, 300 detections per image"),
        Setting("eval.segm_area", "box", "mmdet writes segm results with their boxes: lvis-api takes areas from boxes"),
        unmatched(
            "mmcv Resize (cv2 bilinear on uint8 images)",
            "torchvision resizes float tensors inside the model (bilinear); padding to 32 is the same",
        ),
    ]


def sampler(rfs: bool) -> list[Setting]:
    if not rfs:
        return [
            Setting("sampler._target_", "gol.data.samplers.RandomSampler", "ClassBalancedDataset oversample_thr=0.0")
        ]
    return [
        Setting("sampler._target_", "gol.data.samplers.RepeatFactorSampler", "ClassBalancedDataset (RFS)"),
        Setting("sampler.threshold", 0.001, "oversample_thr=0.001"),
        Setting("sampler.rounding", "ceil", "ClassBalancedDataset repeats math.ceil(r(I)) times"),
    ]


_WEIGHTS = {
    "maskrcnn_r50_fpn": ("resnet50-0676ba61.pth", "init_cfg Pretrained torchvision://resnet50"),
    "maskrcnn_r101_fpn": ("resnet101-63fe2227.pth", "init_cfg Pretrained torchvision://resnet101"),
    "cascade_r101_fpn": ("resnet101-63fe2227.pth", "depth=101, torchvision://resnet101 (the cascade base)"),
    "htc_r101_fpn": ("resnet101-63fe2227.pth", "torchvision://resnet101"),
    "maskrcnn_x101_fpn": ("resnext101_64x4d-ee2c6f71.pth", "open-mmlab://resnext101_64x4d"),
}
_TARGETS = {
    "maskrcnn_r50_fpn": "gol.models.build_maskrcnn_r50_fpn",
    "maskrcnn_r101_fpn": "gol.models.build_maskrcnn_r101_fpn",
    "maskrcnn_x101_fpn": "gol.models.build_maskrcnn_x101_fpn",
    "cascade_r101_fpn": "gol.models.build_cascade_r101_fpn",
    "htc_r101_fpn": "gol.models.build_htc_r101_fpn",
}


def detector(name: str, *, nms: float, normed_mask: bool = False, temperature: float | None = None) -> list[Setting]:
    cascade = name.startswith(("cascade", "htc"))
    file, src = _WEIGHTS[name]
    out = [
        Setting("detector._target_", _TARGETS[name], "Mask R-CNN FPN" if not cascade else "Cascade / HTC RoI head"),
        Setting("detector.weights_backbone", file, src),
        Setting("detector.weights", None, "no detector checkpoint (load_from=None)"),
        Setting("detector.trainable_backbone_layers", None, "frozen_stages=1: stem and stage 1 frozen (3 trained)"),
        Setting("detector.box_score_thresh", 0.0001, "test_cfg.rcnn.score_thr=0.0001"),
        Setting("detector.box_nms_thresh", nms, f"test_cfg.rcnn.nms iou_threshold={nms}"),
        Setting("detector.box_detections_per_img", 300, "test_cfg.rcnn.max_per_img=300"),
        Setting("detector.box_batch_size_per_image", 512, "train_cfg.rcnn.sampler num=512"),
        Setting("detector.rpn_pre_nms_top_n_train", 2000, "train_cfg.rpn_proposal nms_pre=2000"),
        Setting("detector.rpn_post_nms_top_n_train", 2000 if cascade else 1000,
                f"train_cfg.rpn_proposal max_per_img={2000 if cascade else 1000}"),
        Setting("detector.rpn_pre_nms_top_n_test", 1000, "test_cfg.rpn nms_pre=1000"),
        Setting("detector.rpn_post_nms_top_n_test", 1000, "test_cfg.rpn max_per_img=1000"),
        Setting("detector.normed_mask", normed_mask,
                "mask_head predictor_cfg NormedConv2d tempearture=20" if normed_mask else "plain conv mask logits"),
        Setting("detector.classifier_temperature", temperature,
                f"cls_predictor_cfg NormedLinear tempearture={temperature}" if temperature else "plain Linear fc_cls"),
        Setting("detector.box_loss", "l1", "rpn_head and bbox_head loss_bbox L1Loss(loss_weight=1.0)") if not cascade
        else Setting("", None, "rpn_head SmoothL1Loss(beta=1/9); each stage: SmoothL1Loss(beta=1.0), class-agnostic"),
        Setting("detector.roi_align", "mmdet", "RoIAlign sampling_ratio=0, aligned=True"),
        Setting("detector.backbone_norm", "frozen_stats", "norm_cfg BN requires_grad=True, norm_eval=True"),
        unmatched("GroupSampler: batches of one aspect-ratio group", "gol's loaders batch in sampler order"),
    ]  # fmt: skip
    return out


def activation(name: str, *, init: str = "constant", weight: float, bias: float, scoring: str = "own") -> list[Setting]:
    targets = {"sigmoid": "Sigmoid", "softmax": "Softmax", "gumbel": "Gumbel"}
    init_text = (
        f"init_cfg Constant val={weight}, bias={bias} (fc_cls)" if init == "constant"
        else f"no init_cfg: mmdet's default Normal(std={weight}), bias {bias}"
    )  # fmt: skip
    return [
        Setting("activation._target_", f"gol.activations.{targets[name]}", name),
        Setting("activation.init", init, init_text),
        Setting("activation.init_weight", weight, init_text),
        Setting("activation.init_bias", bias, init_text),
        Setting("activation.scoring", scoring,
                "get_bboxes: softmax over the C + 1 logits (the loss has no custom_activation)" if scoring == "softmax"
                else "scores from the trained activation"),
    ]  # fmt: skip


def ce(activation: str) -> list[Setting]:
    loss = {
        "sigmoid": "CrossEntropyLoss(use_sigmoid=True)",
        "softmax": "CrossEntropyLoss(use_sigmoid=False)",
        "gumbel": "GumbelCE",
    }[activation]
    return [
        Setting("loss._target_", "gol.losses.cross_entropy.CrossEntropyLoss", loss),
        Setting("loss.background_column", True, "C + 1 classifier outputs"),
        Setting("loss.numerics", "official", f"{loss} as released (Gumbel: logit and loss clamps)"),
    ]


def eql() -> list[Setting]:
    return [
        Setting("loss._target_", "gol.losses.eql.EQLLoss", "EQL (mmdet/models/losses/eql.py)"),
        Setting("loss.lambda_", 0.0011, "lambda_=0.0011"),
        Setting("loss.numerics", "official", "eql.py as released"),
    ]


def droploss(lambda_: float = 0.0011) -> list[Setting]:
    return [
        Setting("loss._target_", "gol.losses.droploss.DropLoss", "DropLoss (mmdet/models/losses/droploss.py)"),
        Setting("loss.lambda_", lambda_, f"lambda_={lambda_}"),
        Setting("loss.images_per_group", 4, "statistics per GPU: samples_per_gpu=4"),
        Setting("loss.numerics", "official", "droploss.py as released"),
    ]


def federated() -> list[Setting]:
    return [
        Setting("loss._target_", "gol.losses.federated.FederatedLoss", f"FedLoss ({DEV} mmdet/models/losses/fedloss.py)"),
        Setting("loss.num_sampled_classes", 50, "fed_loss_num_cat=50"),
        Setting("loss.frequency_power", 0.5, "freq_weight=0.5"),
        Setting("loss.images_per_group", 4, "class set per GPU: samples_per_gpu=4"),
        Setting("loss.numerics", "official", "fedloss.py as released"),
    ]  # fmt: skip
