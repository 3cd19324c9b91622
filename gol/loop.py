"""The iteration loop of one run: step, skip non-finite losses, log, checkpoint (``gol.engine`` sets it up)."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch.profiler import record_function
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from gol import checkpoint as ckpt_io
from gol import distributed, record
from gol.activations import activation_scalars
from gol.loader import StreamPosition, batches
from gol.tracking import Tracker

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many training steps produced a non-finite loss."""


@dataclass
class Progress:
    """How far training has gone: iterations done, non-finite steps skipped, position in the sample stream."""

    iteration: int = 0
    skipped: int = 0
    stream: StreamPosition = field(default_factory=StreamPosition)


class Loop:
    """The iteration loop of one run: step, skip non-finite losses, log, checkpoint."""

    def __init__(self, cfg: DictConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LambdaLR, scaler: torch.amp.GradScaler,
                 tracker: Tracker | None, rec: record.RunRecord | None, *, world: distributed.World,
                 device: torch.device, use_amp: bool, max_iter: int, ckpt_dir: Path) -> None:  # fmt: skip
        self.cfg, self.schedule = cfg, cfg.schedule
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.tracker, self.rec, self.world = tracker, rec, world
        self.device, self.use_amp, self.max_iter, self.ckpt_dir = device, use_amp, max_iter, ckpt_dir

    def run(self, dataset: Any, sampler: Any, progress: Progress) -> None:
        self.model.train()
        stream = batches(
            dataset, sampler, batch_size=self.schedule.ims_per_batch, start=progress.stream, seed=int(self.cfg.seed),
            num_workers=int(self.cfg.num_workers), rank=self.world.rank, world_size=self.world.world_size,
            pin_memory=self.device.type == "cuda",
        )  # fmt: skip
        bar = tqdm(total=self.max_iter, initial=progress.iteration, desc="train", file=sys.stderr, dynamic_ncols=True,
                   disable=not self.world.is_main, mininterval=1.0 if sys.stderr.isatty() else 30.0)  # fmt: skip
        started, first = time.perf_counter(), progress.iteration
        # Time spent waiting for the loader since the last log: above ~0 the step is starved (raise num_workers).
        waited, waits = 0.0, 0
        fetch_started = time.perf_counter()
        # Log lines print above the progress bar rather than through it (console handlers only; train.log as is).
        with logging_redirect_tqdm():
            try:
                for progress.stream, (images, targets) in stream:
                    waited, waits = waited + time.perf_counter() - fetch_started, waits + 1
                    losses, total = self.step(images, targets, progress)
                    progress.iteration += 1
                    bar.update(1)
                    if progress.iteration % self.schedule.log_period == 0 or progress.iteration == self.max_iter:
                        seconds = (time.perf_counter() - started) / (progress.iteration - first)
                        self.log(losses, total, progress, seconds, data_seconds=waited / waits)
                        waited, waits = 0.0, 0
                        lr = self.optimizer.param_groups[0]["lr"]
                        bar.set_postfix(loss=f"{float(total.detach()):.3f}", lr=f"{lr:.4f}", refresh=False)
                    if progress.iteration % self.schedule.checkpoint_period == 0 or progress.iteration == self.max_iter:
                        self.save(progress)
                    if progress.iteration >= self.max_iter:
                        break
                    fetch_started = time.perf_counter()
            finally:
                stream.close()
                bar.close()

    def step(self, images: list[torch.Tensor], targets: list[dict[str, Any]],
             progress: Progress) -> tuple[dict[str, torch.Tensor], torch.Tensor]:  # fmt: skip
        # The record_function ranges name the step's phases in a profile (python -m gol.bench train_step --profile).
        device = self.device
        with record_function("step/transfer"):
            images = [im.to(device, non_blocking=True) for im in images]
            targets = [{k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in t.items()}
                       for t in targets]  # fmt: skip
        with record_function("step/forward"), torch.autocast(device.type, enabled=self.use_amp):
            losses = self.model(images, targets)
        total = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        # Every rank must take the same decision, or DDP's gradient all-reduce would wait forever.
        if torch.isfinite(distributed.mean_over_ranks(total, self.world)):
            with record_function("step/backward"):
                self.scaler.scale(total).backward()
            with record_function("step/optimizer"):
                if self.schedule.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.schedule.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
        else:
            progress.skipped += 1
            log.warning("iteration %d: non-finite loss %s; step skipped (%d so far)",
                        progress.iteration, float(total.detach()), progress.skipped)  # fmt: skip
            if progress.skipped > self.schedule.max_nonfinite:
                raise NonFiniteLossError(
                    f"{progress.skipped} training steps had a non-finite loss (limit schedule.max_nonfinite="
                    f"{self.schedule.max_nonfinite}); lower schedule.lr or check the data and loss settings"
                )
        self.scheduler.step()
        return losses, total

    def log(
        self,
        losses: dict[str, torch.Tensor],
        total: torch.Tensor,
        progress: Progress,
        seconds: float,
        *,
        data_seconds: float,
    ) -> None:
        """Stream the losses, lr, skipped steps, seconds per iteration (since the start of this attempt),
        seconds per iteration spent waiting for data (since the last log) and the learnable activation parameters
        (``train/aglu_lambda``, ``train/aglu_kappa``; also in the train.log line)."""
        values = {f"train/{k}": float(distributed.mean_over_ranks(v, self.world)) for k, v in losses.items()}
        values["train/loss"] = float(distributed.mean_over_ranks(total, self.world))
        values["train/lr"] = self.optimizer.param_groups[0]["lr"]
        values["train/skipped_steps"] = progress.skipped
        values["train/sec_per_iter"] = seconds
        values["train/data_sec_per_iter"] = data_seconds
        # learnable activation parameters (AGLU's lambda, kappa): identical on every rank (DDP), so read locally
        learned = activation_scalars(self.model)
        values.update({f"train/{k}": v for k, v in learned.items()})
        if self.world.is_main:
            log.info("iteration %d/%d: loss %.4f (%s), lr %.5g, %.3f s/iter, waiting for data %.3f s/iter%s",
                     progress.iteration, self.max_iter, values["train/loss"],
                     ", ".join(f"{k} {float(values[f'train/{k}']):.4f}" for k in losses), values["train/lr"],
                     seconds, data_seconds, "".join(f", {k} {v:.5g}" for k, v in learned.items()))  # fmt: skip
        if self.tracker is not None and self.rec is not None:
            self.tracker.log(values, iteration=progress.iteration)
            self.rec.update(iteration=progress.iteration, skipped_steps=progress.skipped)

    def save(self, progress: Progress) -> None:
        if not self.world.is_main or self.rec is None:
            return
        state = ckpt_io.capture(
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            sampler={"epoch": progress.stream.epoch, "position": progress.stream.position},
            iteration=progress.iteration,
            skipped_steps=progress.skipped,
        )
        ckpt_io.save(state, self.ckpt_dir, iteration=progress.iteration)
        self.rec.update(iteration=progress.iteration, skipped_steps=progress.skipped)
