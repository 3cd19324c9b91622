"""Training of one ablation cell: ``train(cfg, ...)`` (a finished run is evaluated again by ``gol.evaluate``).

Plain functions of a composed config; the Hydra entry point (``gol.train``) only gathers the run folder and the
cell's choices and calls :func:`train`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

from gol import checkpoint as ckpt_io
from gol import distributed, provenance, record
from gol.build import build_components, build_data, build_sampler
from gol.files import remove_partial_writes
from gol.inference import evaluate_model
from gol.loader import StreamPosition
from gol.loop import Loop, Progress
from gol.losses import set_stream_rank
from gol.optim import build_optimizer, resolve_length
from gol.released import find_cell
from gol.tracking import Tracker, run_id_for
from gol.validate import validate

log = logging.getLogger(__name__)


class RunFolderError(RuntimeError):
    """The run folder cannot be used: it holds a finished run, or a run that is alive elsewhere."""


class RunClaimedError(RunFolderError):
    """Another live process has claimed the run folder (a second launch of the same sweep): it runs the cell."""


@dataclass
class RunContext:
    """What the launcher knows about a run and the config does not."""

    run_dir: Path
    choices: dict[str, str | None] = field(default_factory=dict)  # every Hydra group choice (cell, scale, ...)
    overrides: list[str] = field(default_factory=list)
    experiment: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    skip_finished: bool = False  # sweeps skip finished cells; a single run refuses a finished folder

    @property
    def recorded_choices(self) -> dict[str, str | None]:
        """The choices a run record keeps (``record.CHOICE_GROUPS``)."""
        return {group: self.choices.get(group) for group in record.CHOICE_GROUPS}


def _check_folder(ctx: RunContext) -> record.Record | None:
    """Refuse a folder holding a finished run (unless skipping) or a run that another process is still on."""
    prior = record.read(ctx.run_dir)
    if prior is None:
        return None
    if prior.state == "finished":
        if ctx.skip_finished:
            return prior
        raise RunFolderError(
            f"{ctx.run_dir} already holds a finished run; leave hydra.run.dir unset for a new folder, "
            "or evaluate it with `gol-eval --run` instead of training again"
        )
    if prior.is_alive(me=record.owner()):
        raise RunFolderError(
            f"{ctx.run_dir} belongs to a run that is still active ({prior.owner}); wait for it or pick another folder"
        )
    return prior


def train(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """Train, evaluate and record one cell; returns the final metrics ``{"bbox": {...}, "segm": {...}}``.

    The job's first process claims the run folder (``record.claim``) once every process has joined, and tells the
    others: of two launches of one sweep at the same time, exactly one runs each cell, and every process of the
    other job stops with RunClaimedError for it.
    """
    world = distributed.init("cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    me = record.owner()
    try:
        holder = None
        claimed = None
        if world.is_main:
            try:
                claimed = record.claim(ctx.run_dir, me)
                distributed.clear_failures(ctx.run_dir)  # an earlier attempt's
            except record.ClaimedError as error:
                holder = error.owner
        holder = distributed.broadcast_from_main(holder, world)
        if holder is not None:
            raise RunClaimedError(f"{ctx.run_dir} is being run by another process {holder}")
        try:
            return _train_claimed(cfg, ctx, world)
        finally:
            if claimed is not None:
                record.release(claimed, me)
    finally:
        distributed.shutdown(world)


def _train_claimed(cfg: DictConfig, ctx: RunContext, world: distributed.World) -> dict[str, Any]:
    prior = _check_folder(ctx)
    if prior is not None and prior.state == "finished":
        log.info("%s already finished; skipping (its metrics stay as recorded)", ctx.run_dir)
        return record.read_metrics(ctx.run_dir)
    if world.is_main:  # the folder is this process's now: what a killed process was writing is garbage
        remove_partial_writes(ctx.run_dir, ctx.run_dir / "checkpoints")
    rec = _open_record(cfg, ctx, prior) if world.is_main else None
    try:
        # Checked before anything is built; a refused cell still leaves a failed record with the reason.
        validate(cfg)
        distributed.check_device_here(cfg.device)
        return _train(cfg, ctx, world, rec)
    except (SystemExit, KeyboardInterrupt):
        raise  # preempted or stopped: the record stays "running" and the requeued job resumes it
    except BaseException as error:
        _record_failure(ctx, world, rec, error)  # if _train has not already
        raise


def _record_failure(
    ctx: RunContext, world: distributed.World, rec: record.RunRecord | None, error: BaseException
) -> None:
    """Record the run failed, once, with the first line of the error of the process that failed first (another
    rank's own error when this is rank 0 losing it); a non-main rank leaves its own error for rank 0."""
    if rec is None:
        distributed.note_failure(ctx.run_dir, world, error)
    elif rec.record.state != "failed":
        rec.fail(distributed.failure_of_job(ctx.run_dir, world, error))


def _open_record(cfg: DictConfig, ctx: RunContext, prior: record.Record | None) -> record.RunRecord:
    """The run's record, marked running before anything can fail, with the resolved config beside it."""
    record.write_yaml(ctx.run_dir / record.CONFIG, cfg)
    released, deviations = paper_fidelity(cfg, ctx)
    if deviations:
        log.warning("deviates from the released config %s: %s", released, ", ".join(deviations))
    rec = record.RunRecord(
        ctx.run_dir,
        record.Record(
            run_id=(prior.run_id if prior else "") or run_id_for(ctx.run_dir),
            experiment=ctx.experiment,
            choices=ctx.recorded_choices,
            overrides=ctx.overrides,
            seed=int(cfg.seed),
            git_commit=ctx.git_commit,
            git_dirty=ctx.git_dirty,
            config_file=record.CONFIG,
            versions=provenance.versions(str(cfg.eval.engine)),
            started_at=(prior.started_at if prior else None) or record.now(),
            iteration=prior.iteration if prior else 0,
            skipped_steps=prior.skipped_steps if prior else 0,
            annotations=prior.annotations if prior else {},  # compared with this attempt's files
            owner=record.owner(),
            backbone_init=backbone_init(cfg.detector),
            released_config=released,
            deviations=deviations,
        ),
    )
    rec.update()
    return rec


def paper_fidelity(cfg: DictConfig, ctx: RunContext) -> tuple[str | None, list[str]]:
    """The released config of a full-scale paper cell and the settings this run changed from it."""
    if ctx.choices.get("scale") not in (None, "full"):
        return None, []  # a smoke-scale cell is a check that it runs, never the paper's cell
    resolved = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    cell = find_cell(ctx.experiment, ctx.choices, resolved)
    if cell is None:
        return None, []
    return cell.config or f"(none released for {cell.experiment}: {cell.label})", cell.deviations(resolved)


def backbone_init(detector: DictConfig) -> str:
    """How the backbone starts, for the record: ImageNet file, whole-detector file, or from scratch."""
    if detector.get("weights") is not None:
        return f"detector:{Path(str(detector.weights)).name}"
    if detector.get("weights_backbone") is not None:
        return f"imagenet:{Path(str(detector.weights_backbone)).name}"
    return "scratch"


def set_threads(cfg: DictConfig) -> None:
    """Apply ``cfg.threads`` (torch intra-op CPU threads); null keeps torch's default of one per core.

    On a small or shared CPU, fewer threads can be much faster: torch's OpenMP threads wait for one another at
    every parallel operation, so when other processes hold the cores a step stalls. On two cores shared with
    other jobs, a 2-image tiny-detector step took a median 1965 ms with two threads against 100 ms with one
    (the two alternated in one process); hence one thread per run in the demo.
    """
    threads = cfg.get("threads")
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(
            f"threads must be a positive number of CPU threads, or null for torch's default; got {threads!r}"
        )
    torch.set_num_threads(threads)


def _train(cfg: DictConfig, ctx: RunContext, world: distributed.World, rec: record.RunRecord | None) -> dict[str, Any]:
    set_threads(cfg)
    torch.manual_seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    data = build_data(cfg)
    parts = build_components(cfg, data, run_dir=ctx.run_dir, save_stats=world.is_main)
    set_stream_rank(parts.model, world.rank)  # each rank draws its own numbers; not checkpointed, so set here
    device = distributed.device_for(cfg.device, world)
    model = parts.model.to(device)
    sampler = build_sampler(cfg, data.train)
    schedule = cfg.schedule
    iters_per_epoch = max(1, len(sampler) // schedule.ims_per_batch)
    max_iter, steps = resolve_length(schedule, iters_per_epoch=iters_per_epoch)
    optimizer, scheduler = build_optimizer(model, schedule, steps=steps)
    use_amp = bool(schedule.amp) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    ckpt_dir = ctx.run_dir / "checkpoints"
    progress = Progress()
    found = ckpt_io.load_latest(ckpt_dir, map_location=device)
    if found is not None:
        resume_from, state = found
        iteration, skipped, sampler_position = ckpt_io.restore(
            state, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler
        )
        progress = Progress(iteration, skipped, StreamPosition(**sampler_position))
        log.info("resumed from %s at iteration %d", resume_from, progress.iteration)

    tracker = None
    if rec is not None:
        rec.update(iteration=progress.iteration, max_iter=max_iter, skipped_steps=progress.skipped,
                   world_size=world.world_size, device=provenance.device_info(device, world.world_size),
                   annotations=provenance.annotation_fingerprints(data, rec.record.annotations))  # fmt: skip
        tracker = Tracker(
            cfg.logger, run_dir=ctx.run_dir, run_id=rec.record.run_id, group=ctx.experiment or "adhoc",
            name=",".join(ctx.overrides) or "default",
            # The cell's identity beside the resolved config, so tables can be rebuilt from W&B alone.
            config={**cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True)), "choices": ctx.recorded_choices,
                    "experiment": ctx.experiment, "overrides": ctx.overrides,
                    "released_config": rec.record.released_config, "deviations": rec.record.deviations,
                    "provenance": rec.record.provenance()},
        )  # fmt: skip
        rec.update(wandb=tracker.info)
    outcome = "failed"
    try:
        if progress.iteration < max_iter:
            trained = model
            if world.distributed:
                ids = [device.index] if device.type == "cuda" else None
                trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
            loop = Loop(cfg, trained, optimizer, scheduler, scaler, tracker, rec, world=world, device=device,
                        use_amp=use_amp, max_iter=max_iter, ckpt_dir=ckpt_dir)  # fmt: skip
            loop.run(data.train, sampler, progress)
        metrics: dict[str, Any] = {}
        # Every rank predicts its shard of the val split; rank 0 gets the detections and computes the metrics.
        beat = None if rec is None else rec.update
        evaluated = evaluate_model(
            model, data, cfg.eval, device=device, world=world, num_workers=int(cfg.num_workers), heartbeat=beat
        )
        if evaluated is not None and rec is not None and tracker is not None:
            metrics, per_category = evaluated
            tracker.summarize(metrics, per_category)
            rec.finish(metrics=metrics, per_category=per_category)
        distributed.wait_for_main(world)  # the other ranks wait while rank 0 computes the metrics
        outcome = "finished"
        return metrics
    except (SystemExit, KeyboardInterrupt):
        outcome = "preempted"
        raise
    except BaseException as error:
        # Recorded before W&B's finish, which can take seconds: SLURM may kill a failing job's tasks meanwhile.
        _record_failure(ctx, world, rec, error)
        raise
    finally:
        if tracker is not None:
            tracker.finish(outcome)
