"""Training checkpoints: what they hold (``capture`` / ``restore``, both halves of the format), atomic writes,
and the resume lookup.

A checkpoint holds everything needed to continue bit-for-bit: model (with the loss's buffers and generator
state), optimizer, scheduler, AMP scaler, sampler position, RNG states, the iteration and the skipped-step count.
Files are written to a temporary name in the same folder, flushed to disk and renamed (``gol.files``), so a job
killed mid-write never leaves a corrupt ``last.pt``; a file damaged anyway (a node lost during a copy, a network
filesystem that lost the tail) is skipped on resume for the newest one that loads whole (:func:`load_latest`).
"""

from __future__ import annotations

import logging
import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gol.files import atomic_write

log = logging.getLogger(__name__)

LAST = "last.pt"
_PERIODIC = re.compile(r"^iter_(\d{7})\.pt$")


def rng_state() -> dict[str, Any]:
    """Every global random state a training step can touch."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def capture(
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    sampler: dict[str, int],
    iteration: int,
    skipped_steps: int,
) -> dict[str, Any]:
    """Everything a checkpoint holds; :func:`restore` reads it back. ``model`` may be DDP-wrapped."""
    return {
        "model": getattr(model, "module", model).state_dict(),  # the bare model, also under DDP
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "sampler": dict(sampler),  # the sample stream's {"epoch", "position"}
        "rng": rng_state(),
        "iteration": iteration,
        "skipped_steps": skipped_steps,
    }


def restore(
    state: dict[str, Any],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
) -> tuple[int, int, dict[str, int]]:
    """Load a checkpoint made by :func:`capture` into the training objects and the global RNGs; returns
    (iteration, skipped steps, sampler position) to continue from."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return int(state["iteration"]), int(state["skipped_steps"]), dict(state["sampler"])


_KEYS = ("model", "optimizer", "scheduler", "scaler", "sampler", "rng", "iteration", "skipped_steps")


# How a damaged file fails to load: torch's zip reader (RuntimeError), pickle, a cut stream, content of another kind.
# Other OSErrors (EIO, ESTALE, permissions) are the storage's, not the file's: they propagate.
_DAMAGED = (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, KeyError, AttributeError,
            UnicodeDecodeError, ModuleNotFoundError)  # fmt: skip


class NoIntactCheckpointError(ValueError):
    """Every checkpoint of a run folder is damaged; the message names each and why."""


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` to ``path`` through a temporary file, an atomic rename and a folder fsync; a full disk is a
    one-line ``gol.files.DiskFullError`` and leaves the previous file intact."""
    atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def save(state: dict[str, Any], folder: Path, *, iteration: int, keep: int = 2) -> Path:
    """Write ``last.pt`` and ``iter_<iteration>.pt``; keep only the newest ``keep`` periodic files.

    ``last.pt`` comes first: resume tries it first, so a job killed between the two writes resumes from this
    state rather than the previous one (the other order would repeat a whole checkpoint period of training).
    """
    periodic = folder / f"iter_{iteration:07d}.pt"
    save_atomic(state, folder / LAST)
    save_atomic(state, periodic)
    for old in periodic_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    log.info("checkpoint written: %s", periodic)
    return periodic


def periodic_checkpoints(folder: Path) -> list[Path]:
    """Periodic checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _PERIODIC.match(p.name))


def resume_candidates(folder: Path) -> list[Path]:
    """Checkpoints a restarted run may resume from, in order: ``last.pt``, then the periodic files newest first
    (``save`` writes each state to ``last.pt`` first, so it is the latest whole state unless it is damaged)."""
    last = [folder / LAST] if (folder / LAST).is_file() else []
    return last + periodic_checkpoints(folder)[::-1]


def load_latest(folder: Path, *, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of ``folder`` that loads whole, and its state; None when the folder holds none.

    A damaged file (truncated, unreadable, or missing part of the state) is skipped with a warning naming it and
    why; NoIntactCheckpointError when every file is damaged.
    """
    skipped: list[str] = []
    for path in resume_candidates(folder):
        try:
            state = torch.load(path, map_location=map_location, weights_only=False)
            missing = [k for k in _KEYS if not isinstance(state, dict) or k not in state]
            if missing:
                raise ValueError(f"holds no {', '.join(missing)}")
        except torch.cuda.OutOfMemoryError:
            raise  # the file is fine; the device is full
        except _DAMAGED as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            skipped.append(f"{path.name} ({type(error).__name__}: {reason[:160]})")
            continue
        if skipped:
            log.warning("skipped damaged checkpoint(s) %s; resuming from %s", "; ".join(skipped), path)
        return path, state
    if skipped:
        raise NoIntactCheckpointError(
            f"no checkpoint in {folder} loads whole: {'; '.join(skipped)}; move them away to start the run over"
        )
    return None


def load(path: Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save` (it holds optimizer and RNG states, hence weights_only=False)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; pass the path of a .pt file in a run's checkpoints/"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except torch.cuda.OutOfMemoryError:
        raise
    except _DAMAGED as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise NoIntactCheckpointError(
            f"checkpoint {path} cannot be loaded ({type(error).__name__}: {first[:160]}): it is damaged or not a "
            "checkpoint of gol-train; pass another one"
        ) from None
