"""Benchmark: gol's training step (the engine's ``Loop.step``) against a bare torchvision Mask R-CNN step.

    python -m gol.bench train_step [--size smoke|full] [--model tiny|r50] [--batch B] [--repeats N]
                                   [--threads T] [--device cpu|cuda] [--root DIR] [--profile N] [--json PATH]

Both detectors have the same architecture and start from the same weights. gol's is built by the engine's own
code from the composed config (``conf/detector/<model>.yaml``, ``activation=softmax loss=ce``): ``GolRoIHeads``
with the softmax cross-entropy behind the classification-loss seam, and ``GolTransform``. It is stepped by the
engine's ``Loop.step`` (device transfer, autocast flag, finiteness check, GradScaler, optimizer and lr-scheduler
step). torchvision's has the stock ``RoIHeads`` (``fastrcnn_loss``), ``FastRCNNPredictor`` and
``GeneralizedRCNNTransform``, and is stepped by the plain ``loss = sum(model(images, targets).values());
zero_grad(); backward(); step()`` (with autocast and a GradScaler when AMP is on, as torchvision's reference
script does). Both step on the same batches of the embedded dataset, interleaved (the order alternates between
batches), each step from the same RNG seed, after a warm-up. The report is the median step time of each and
their ratio, gol / bare; the project's target is at most 1.05.

With ``--profile N`` one more gol step runs under ``torch.profiler``: the report adds the time of each phase of
``Loop.step`` (transfer, forward, backward, optimizer: the engine's ``record_function`` ranges; on CUDA the
device time as well) and the N operators with the most self time.

``smoke`` is a seconds-long check (2 images per batch, a small dataset); ``full`` uses 8 images per batch on the
demo's dataset. Inputs have one fixed size (the demo's middle training size for the tiny model, 256 px for R50),
so that both transforms resize every image alike.
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.profiler import ProfilerActivity, profile
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from gol.bench._report import add_json_option, write_json
from gol.build import build_components, build_data
from gol.config import CONF_DIR, register_configs
from gol.config.resolvers import register_resolvers
from gol.config.schedule import ScheduleConf
from gol.data import DataSource, collate
from gol.distributed import World
from gol.loop import Loop, Progress
from gol.optim import build_optimizer

TARGET_RATIO = 1.05  # the project's budget for gol's step over a bare torchvision step


@dataclass(frozen=True)
class Size:
    """How much to run: the embedded dataset's size, the batch, and how many timed steps."""

    dataset: tuple[str, ...]  # dataset overrides
    batch: int
    batches: int
    repeats: int
    warmup: int


SIZES = {
    "smoke": Size(
        dataset=("dataset.num_shapes=3", "dataset.num_colours=2", "dataset.num_textures=2", "dataset.num_train=120",
                 "dataset.num_val=16", "dataset.max_images_per_category=105"),
        batch=2, batches=2, repeats=1, warmup=1,
    ),
    "full": Size(dataset=(), batch=8, batches=6, repeats=5, warmup=2),
}  # fmt: skip
# Detector option and (shorter side, longer-side cap) of the inputs per model.
MODELS = {"tiny": ("tiny", 128, 256), "r50": ("maskrcnn_r50_fpn", 256, 512)}
# SGD as the schedules configure it, without warm-up or decay (a step costs the same at any lr); R50 from scratch
# (no pretrained weights here) needs a lower lr to stay finite over the timed steps.
LR = {"tiny": 0.02, "r50": 0.002}
MOMENTUM, WEIGHT_DECAY = 0.9, 1e-4


def compose_config(model_name: str, size: Size, *, root: Path) -> DictConfig:
    """The training config the engine would get for a softmax-CE cell of ``model_name`` (data under ``root``)."""
    detector, image_size, max_size = MODELS[model_name]
    register_configs()
    register_resolvers()
    overrides = [
        f"paths.root={root}", "logger=none", "dataset=embedded", f"detector={detector}", "activation=softmax",
        "loss=ce", f"dataset.train_sizes=[{image_size}]", f"dataset.test_size={image_size}",
        f"dataset.max_size={max_size}", *size.dataset,
    ]  # fmt: skip
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose("train", overrides=overrides)


def load_batches(data: DataSource, *, size: Size, batch: int) -> list[tuple[list[Tensor], list[dict[str, Any]]]]:
    """The first ``size.batches`` training batches of ``batch`` images (flips drawn from a fixed seed)."""
    needed = size.batches * batch
    if len(data.train) < needed:
        raise ValueError(f"the training split has {len(data.train)} images, fewer than {needed}; lower --batch")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the flips
        return [collate([data.train[i] for i in range(b * batch, (b + 1) * batch)]) for b in range(size.batches)]


def bare_torchvision(model: MaskRCNN) -> MaskRCNN:
    """A copy of gol's detector with torchvision's own RoI heads, box predictor and transform (same weights)."""
    bare = copy.deepcopy(model)
    heads = bare.roi_heads
    cls_score, bbox_pred = heads.box_predictor.cls_score, heads.box_predictor.bbox_pred
    if not isinstance(cls_score, torch.nn.Linear) or cls_score.out_features * 4 != bbox_pred.out_features:
        raise ValueError("the bare torchvision copy needs a plain linear softmax classifier over K + 1 classes")
    predictor = FastRCNNPredictor(cls_score.in_features, cls_score.out_features)
    predictor.load_state_dict(heads.box_predictor.state_dict())
    bare.roi_heads = RoIHeads(
        heads.box_roi_pool, heads.box_head, predictor,
        fg_iou_thresh=heads.proposal_matcher.high_threshold, bg_iou_thresh=heads.proposal_matcher.low_threshold,
        batch_size_per_image=heads.fg_bg_sampler.batch_size_per_image,
        positive_fraction=heads.fg_bg_sampler.positive_fraction, bbox_reg_weights=heads.box_coder.weights,
        score_thresh=heads.score_thresh, nms_thresh=heads.nms_thresh, detections_per_img=heads.detections_per_img,
        mask_roi_pool=heads.mask_roi_pool, mask_head=heads.mask_head, mask_predictor=heads.mask_predictor,
    )  # fmt: skip
    transform = bare.transform
    bare.transform = GeneralizedRCNNTransform(
        min_size=transform.train_sizes, max_size=transform.max_size, image_mean=transform.image_mean,
        image_std=transform.image_std, size_divisible=transform.size_divisible,
    )  # fmt: skip
    return bare


def gol_stepper(model: MaskRCNN, *, device: torch.device, amp: bool, ckpt_dir: Path, lr: float) -> tuple[
    Callable[..., None], Progress
]:  # fmt: skip
    """``images, targets -> None`` through the engine's ``Loop.step`` (with its optimizer and lr scheduler), and
    the loop's progress (its count of skipped non-finite steps)."""
    schedule = OmegaConf.structured(ScheduleConf(
        max_iter=10**9, lr=lr, scale_lr=False, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, warmup_iters=0,
        amp=amp,
    ))  # fmt: skip
    cfg: DictConfig = OmegaConf.create({"schedule": schedule, "seed": 0, "num_workers": 0})
    optimizer, scheduler = build_optimizer(model, cfg.schedule, steps=[])
    use_amp = amp and device.type == "cuda"  # as the engine decides
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    loop = Loop(cfg, model, optimizer, scheduler, scaler, None, None, world=World(), device=device, use_amp=use_amp,
                max_iter=10**9, ckpt_dir=ckpt_dir)  # fmt: skip
    progress = Progress()

    def step(images: list[Tensor], targets: list[dict[str, Any]]) -> None:
        loop.step(images, targets, progress)

    return step, progress


def bare_stepper(model: MaskRCNN, *, device: torch.device, amp: bool, lr: float, losses: list[Tensor]) -> Callable[
    ..., None
]:  # fmt: skip
    """``images, targets -> None``: torchvision's reference training step, nothing else (each step's loss is kept
    in ``losses``, detached, to be checked for finiteness after the timing)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    use_amp = amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)

    def step(images: list[Tensor], targets: list[dict[str, Any]]) -> None:
        # torchvision's transform takes float images: converted on the device, as the engine's model does itself
        images = [image.to(device, non_blocking=True).float().div_(255.0) for image in images]
        targets = [{k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in t.items()}
                   for t in targets]  # fmt: skip
        with torch.autocast(device.type, enabled=use_amp):
            loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        if use_amp:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        losses.append(loss.detach())

    return step


def _first_losses(model: MaskRCNN, batch: tuple[list[Tensor], list[dict[str, Any]]], device: torch.device) -> dict[
    str, float
]:  # fmt: skip
    images, targets = batch
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        losses = model([im.to(device).float().div_(255.0) for im in images],
                       [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets])  # fmt: skip
    return {k: float(v) for k, v in losses.items()}


PHASES = ("step/transfer", "step/forward", "step/backward", "step/optimizer")  # Loop.step's record_function ranges


def profile_step(step: Callable[..., None], batch: tuple[list[Tensor], list[dict[str, Any]]], *,
                 device: torch.device, top: int) -> dict[str, Any]:  # fmt: skip
    """Where one step spends its time: milliseconds per phase of ``Loop.step`` and the ``top`` operators by self
    time (CPU time, and device time on CUDA)."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        step(*batch)
        if cuda:
            torch.cuda.synchronize(device)
    events = prof.key_averages()
    self_key = "self_device_time_total" if cuda else "self_cpu_time_total"
    by_name = {e.key: e for e in events}
    phases = {
        name.removeprefix("step/"): {
            "cpu_ms": by_name[name].cpu_time_total / 1e3,
            **({"device_ms": by_name[name].device_time_total / 1e3} if cuda else {}),
        }
        for name in PHASES if name in by_name
    }  # fmt: skip
    ops = [e for e in events if not e.key.startswith("step/")]
    total = sum(getattr(e, self_key) for e in ops) or 1.0
    ranked = sorted(ops, key=lambda e: getattr(e, self_key), reverse=True)[:top]
    return {
        "time": "device" if cuda else "cpu",
        "phases_ms": phases,
        "top_ops": [{"op": e.key, "calls": e.count, "self_ms": getattr(e, self_key) / 1e3,
                     "share": getattr(e, self_key) / total} for e in ranked],
    }  # fmt: skip


def run(*, size: str = "full", model_name: str = "tiny", batch: int | None = None, repeats: int | None = None,
        device: str = "cpu", amp: bool = True, root: Path | None = None, profile_top: int = 0) -> dict[str, Any]:  # fmt: skip
    """Time both steps; returns the report (median milliseconds, ratio gol / bare, first-step losses, and with
    ``profile_top`` > 0 a profile of one more gol step)."""
    spec = SIZES[size]
    batch = batch or spec.batch
    repeats = repeats or spec.repeats
    dev = torch.device(device)
    cfg = compose_config(model_name, spec, root=root or Path(tempfile.gettempdir()) / "gol-bench")
    data = build_data(cfg)
    batches = load_batches(data, size=spec, batch=batch)
    torch.manual_seed(0)
    gol_model = build_components(cfg, data).model
    bare_model = bare_torchvision(gol_model)
    gol_model.to(dev).train()
    bare_model.to(dev).train()
    # Same weights and the same RNG draws: the two forward passes must agree before anything is timed.
    first = {"gol": _first_losses(gol_model, batches[0], dev), "bare": _first_losses(bare_model, batches[0], dev)}
    bare_losses: list[Tensor] = []
    with tempfile.TemporaryDirectory() as tmp:
        gol_step, progress = gol_stepper(gol_model, device=dev, amp=amp, ckpt_dir=Path(tmp), lr=LR[model_name])
        steps = {
            "gol": gol_step,
            "bare": bare_stepper(bare_model, device=dev, amp=amp, lr=LR[model_name], losses=bare_losses),
        }
        times: dict[str, list[float]] = {name: [] for name in steps}

        def timed(name: str, images: list[Tensor], targets: list[dict[str, Any]], seed: int) -> float:
            torch.manual_seed(seed)  # both see the same proposals' sampling and resize draws
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
            steps[name](images, targets)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            return time.perf_counter() - start

        for w in range(spec.warmup):
            for name in steps:
                timed(name, *batches[w % len(batches)], seed=w)
        for r in range(repeats):
            for b, (images, targets) in enumerate(batches):
                order = ("gol", "bare") if (r + b) % 2 == 0 else ("bare", "gol")
                for name in order:
                    times[name].append(timed(name, images, targets, seed=1000 * r + b))
        profiled = profile_step(steps["gol"], batches[0], device=dev, top=profile_top) if profile_top > 0 else None
    median_ms = {name: 1e3 * statistics.median(ts) for name, ts in times.items()}
    return {
        "model": model_name, "size": size, "batch": batch, "image_size": data.test_size, "batches": len(batches),
        "repeats": repeats, "warmup": spec.warmup, "device": str(dev), "amp": amp and dev.type == "cuda",
        "threads": torch.get_num_threads(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "median_ms": median_ms, "min_ms": {name: 1e3 * min(ts) for name, ts in times.items()},
        "ratio": median_ms["gol"] / median_ms["bare"], "target_ratio": TARGET_RATIO, "first_step_losses": first,
        # A skipped step costs no backward pass: a run with skips does not compare like with like.
        "nonfinite_steps": {"gol": progress.skipped, "bare": sum(not bool(torch.isfinite(v)) for v in bare_losses)},
        "profile": profiled,
    }  # fmt: skip


def format_report(report: dict[str, Any]) -> str:
    ms, low = report["median_ms"], report["min_ms"]
    diff = max(abs(report["first_step_losses"]["gol"][k] - v) for k, v in report["first_step_losses"]["bare"].items()
               if k in report["first_step_losses"]["gol"])  # fmt: skip
    verdict = "within" if report["ratio"] <= report["target_ratio"] else "ABOVE"
    lines = [
        f"training step, {report['model']} at {report['image_size']} px, batch {report['batch']}, {report['device']}"
        f" (amp {report['amp']}), {report['threads']} thread(s), median of {report['repeats']} x "
        f"{report['batches']} steps:",
        f"  bare torchvision  {ms['bare']:9.1f} ms  (min {low['bare']:.1f})",
        f"  gol Loop.step     {ms['gol']:9.1f} ms  (min {low['gol']:.1f})",
        f"  ratio gol / bare  {report['ratio']:9.3f}   ({verdict} the {report['target_ratio']} target)",
        f"  first-step losses agree to {diff:.2e}; non-finite steps: gol {report['nonfinite_steps']['gol']}, "
        f"bare {report['nonfinite_steps']['bare']}",
    ]  # fmt: skip
    profiled = report.get("profile")
    if profiled:
        lines.append(f"  one gol step under torch.profiler ({profiled['time']} time):")
        for phase, ms in profiled["phases_ms"].items():
            device_ms = f", device {ms['device_ms']:.1f} ms" if "device_ms" in ms else ""
            lines.append(f"    {phase:<10} {ms['cpu_ms']:9.1f} ms{device_ms}")
        lines.append("    operators by self time:")
        lines += [
            f"    {op['share']:6.1%} {op['self_ms']:9.1f} ms {op['calls']:6d} calls  {op['op']}"
            for op in profiled["top_ops"]
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gol.bench train_step", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--batch", type=int, default=None, help="images per step (default: the size's)")
    parser.add_argument("--repeats", type=int, default=None, help="passes over the batches (default: the size's)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: less noise)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="no mixed precision on CUDA")
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="paths.root: the embedded dataset is generated under it (default: a temp folder)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="profile one more gol step: time per phase and the N costliest operators",
    )
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.profile < 0:
        parser.error("--profile must be >= 0")
    if (
        args.threads < 1
        or (args.batch is not None and args.batch < 1)
        or (args.repeats is not None and args.repeats < 1)
    ):
        parser.error("--threads, --batch and --repeats must be >= 1")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    torch.set_num_threads(args.threads)
    report = run(size=args.size, model_name=args.model, batch=args.batch, repeats=args.repeats,
                 device=args.device, amp=args.amp, root=args.root, profile_top=args.profile)  # fmt: skip
    sys.stdout.write(format_report(report) + "\n")
    write_json(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
