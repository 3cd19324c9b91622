"""Training and evaluation of one ablation cell: ``train(cfg, ...)`` and ``evaluate_run(run_dir, ...)``.

Plain functions of a composed config; the Hydra entry point (``gol.train``) only gathers the run folder and the
cell's choices and calls :func:`train`.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from gol import checkpoint, record
from gol.build import build_components, build_data, build_sampler
from gol.config.validate import validate
from gol.inference import evaluate_model
from gol.loader import StreamPosition, batches
from gol.optim import build_optimizer, resolve_length
from gol.tracking import Tracker, run_id_for

log = logging.getLogger(__name__)

# A record still "running" and refreshed this recently belongs to a live job (heartbeats come every log period).
_LIVE_WINDOW_S = 600.0


class RunFolderError(RuntimeError):
    """The run folder cannot be used: it holds a finished run, or a run that is alive elsewhere."""


class NonFiniteLossError(RuntimeError):
    """Too many training steps produced a non-finite loss."""


@dataclass
class RunContext:
    """What the launcher knows about a run and the config does not."""

    run_dir: Path
    choices: dict[str, str | None] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    experiment: str | None = None
    git_commit: str | None = None
    skip_finished: bool = False  # sweeps skip finished cells; a single run refuses a finished folder


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _check_folder(ctx: RunContext) -> dict[str, Any] | None:
    """Refuse a folder holding a finished run (unless skipping) or a run that is alive elsewhere."""
    prior = record.read(ctx.run_dir)
    if prior is None:
        return None
    if prior.get("state") == "finished":
        if ctx.skip_finished:
            return prior
        raise RunFolderError(
            f"{ctx.run_dir} already holds a finished run; leave hydra.run.dir unset for a new folder, "
            "or evaluate it with `gol-eval --run` instead of training again"
        )
    if prior.get("state") == "running":
        mine = record.owner()
        theirs = prior.get("owner") or {}
        same_job = theirs.get("slurm_job_id") is not None and theirs.get("slurm_job_id") == mine["slurm_job_id"]
        age = time.time() - _iso_seconds(prior.get("updated_at"))
        if not same_job and age < _LIVE_WINDOW_S and _alive(theirs):
            raise RunFolderError(
                f"{ctx.run_dir} belongs to a run that is still active ({theirs}); wait for it or pick another folder"
            )
    return prior


def _iso_seconds(stamp: str | None) -> float:
    import datetime as dt

    if not stamp:
        return 0.0
    return dt.datetime.fromisoformat(stamp).timestamp()


def _alive(owner: dict[str, Any]) -> bool:
    """Whether the owning process may still be running (only decidable for a process on this host)."""
    import os
    import socket

    if owner.get("host") != socket.gethostname() or not owner.get("pid"):
        return True
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return int(owner["pid"]) != os.getpid()


def train(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """Train, evaluate and record one cell; returns the final metrics ``{"bbox": {...}, "segm": {...}}``."""
    prior = _check_folder(ctx)
    if prior is not None and prior.get("state") == "finished":
        log.info("%s already finished; skipping (its metrics stay as recorded)", ctx.run_dir)
        return record.read_metrics(ctx.run_dir)
    validate(cfg)
    torch.manual_seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)

    data = build_data(cfg)
    parts = build_components(cfg, data)
    device = pick_device(cfg.device)
    model = parts.model.to(device)
    sampler = build_sampler(cfg, data.train)
    schedule = cfg.schedule
    batch_size = schedule.ims_per_batch
    iters_per_epoch = max(1, len(sampler) // batch_size)
    max_iter, steps = resolve_length(schedule, iters_per_epoch=iters_per_epoch)
    optimizer, scheduler = build_optimizer(model, schedule, steps=steps)
    use_amp = bool(schedule.amp) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    ckpt_dir = ctx.run_dir / "checkpoints"
    iteration, skipped, stream = 0, 0, StreamPosition()
    resume_from = checkpoint.latest(ckpt_dir)
    if resume_from is not None:
        state = checkpoint.load(resume_from, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        checkpoint.set_rng_state(state["rng"])
        iteration, skipped = state["iteration"], state["skipped_steps"]
        stream = StreamPosition(**state["sampler"])
        log.info("resumed from %s at iteration %d", resume_from, iteration)

    run_id = (prior or {}).get("run_id") or run_id_for(ctx.run_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    record.write_yaml(ctx.run_dir / "config.yaml", cfg)
    rec = record.RunRecord(
        ctx.run_dir,
        {
            "run_id": run_id,
            "state": "running",
            "error": None,
            "experiment": ctx.experiment,
            "choices": ctx.choices,
            "overrides": ctx.overrides,
            "seed": int(cfg.seed),
            "git_commit": ctx.git_commit,
            "started_at": (prior or {}).get("started_at") or record.now(),
            "finished_at": None,
            "iteration": iteration,
            "max_iter": max_iter,
            "skipped_steps": skipped,
            "owner": record.owner(),
            "wandb": None,
        },
    )
    rec.update()
    name = ",".join(ctx.overrides) or "default"
    tracker = Tracker(
        cfg.logger, run_dir=ctx.run_dir, run_id=run_id, group=ctx.experiment or "adhoc", name=name, config=resolved
    )
    rec.update(wandb=tracker.info)
    failed = True
    try:
        if iteration < max_iter:
            skipped = _loop(
                cfg, model, data.train, sampler, optimizer, scheduler, scaler, tracker, rec,
                device=device, use_amp=use_amp, start_iter=iteration, max_iter=max_iter,
                skipped=skipped, stream=stream, ckpt_dir=ckpt_dir,
            )  # fmt: skip
        metrics, per_category = evaluate_model(model, data, cfg.eval, device=device)
        tracker.summarize(metrics, per_category)
        rec.finish(metrics=metrics, per_category=per_category)
        failed = False
        return metrics
    except BaseException as error:
        rec.fail(error)
        raise
    finally:
        tracker.finish(failed=failed)


def _loop(
    cfg: DictConfig,
    model: torch.nn.Module,
    dataset: Any,
    sampler: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler,
    tracker: Tracker,
    rec: record.RunRecord,
    *,
    device: torch.device,
    use_amp: bool,
    start_iter: int,
    max_iter: int,
    skipped: int,
    stream: StreamPosition,
    ckpt_dir: Path,
) -> int:
    """The iteration loop; returns the number of skipped (non-finite) steps."""
    schedule = cfg.schedule
    model.train()
    iteration = start_iter
    stream_iter = batches(
        dataset, sampler, batch_size=schedule.ims_per_batch, start=stream, seed=int(cfg.seed),
        num_workers=int(cfg.num_workers),
    )  # fmt: skip
    bar = tqdm(total=max_iter, initial=start_iter, desc="train", file=sys.stderr, dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 30.0)  # fmt: skip
    started = time.perf_counter()
    try:
        for stream, (images, targets) in stream_iter:
            images = [im.to(device, non_blocking=True) for im in images]
            targets = [{k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in t.items()}
                       for t in targets]  # fmt: skip
            with torch.autocast(device.type, enabled=use_amp):
                losses = model(images, targets)
            total = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(total):
                scaler.scale(total).backward()
                if schedule.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), schedule.grad_clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                skipped += 1
                log.warning("iteration %d: non-finite loss %s; step skipped (%d so far)", iteration, total.item(), skipped)
                if skipped > schedule.max_nonfinite:
                    raise NonFiniteLossError(
                        f"{skipped} training steps had a non-finite loss (limit schedule.max_nonfinite="
                        f"{schedule.max_nonfinite}); lower schedule.lr or check the data and loss settings"
                    )
            scheduler.step()
            iteration += 1
            bar.update(1)
            if iteration % schedule.log_period == 0 or iteration == max_iter:
                values = {f"train/{k}": float(v) for k, v in losses.items()}
                values["train/loss"] = float(total)
                values["train/lr"] = optimizer.param_groups[0]["lr"]
                values["train/skipped_steps"] = skipped
                values["train/sec_per_iter"] = (time.perf_counter() - started) / (iteration - start_iter)
                tracker.log(values, iteration=iteration)
                bar.set_postfix(loss=f"{float(total):.3f}", lr=f"{values['train/lr']:.4f}")
                rec.update(iteration=iteration, skipped_steps=skipped)
            if iteration % schedule.checkpoint_period == 0 or iteration == max_iter:
                state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "sampler": {"epoch": stream.epoch, "position": stream.position},
                    "rng": checkpoint.rng_state(),
                    "iteration": iteration,
                    "skipped_steps": skipped,
                }
                checkpoint.save(state, ckpt_dir, iteration=iteration)
                rec.update(iteration=iteration, skipped_steps=skipped)
            if iteration >= max_iter:
                break
    finally:
        stream_iter.close()
        bar.close()
    return skipped


def evaluate_run(run_dir: Path, *, checkpoint_path: Path | None = None, out: Path | None = None) -> dict[str, Any]:
    """Evaluate a run's checkpoint (default: its latest) on its val split; writes ``out`` when given."""
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{run_dir} holds no config.yaml; pass the folder of a run started by gol-train")
    cfg = OmegaConf.load(config_file)
    path = checkpoint_path or checkpoint.latest(run_dir / "checkpoints")
    if path is None:
        raise FileNotFoundError(f"{run_dir}/checkpoints holds no checkpoint; pass --checkpoint PATH")
    parts = build_components(cfg)
    device = pick_device(cfg.device)
    state = checkpoint.load(path, map_location=device)
    parts.model.load_state_dict(state["model"])
    metrics, per_category = evaluate_model(parts.model.to(device), parts.data, cfg.eval, device=device)
    if out is not None:
        record.write_json(out, metrics)
        if per_category is not None:
            record.write_json(out.with_name(out.stem + "_per_category.json"), per_category)
    return metrics
