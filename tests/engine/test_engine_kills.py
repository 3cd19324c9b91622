"""SIGKILL at random moments of one cell's life -- training steps, checkpoint writes, evaluation, the run's final
writes and W&B's finish -- each time followed by the same `gol-train` command typed again: the run ends with the
metrics and weights of an undisturbed one, and no file it recorded is ever lost or torn. Typed once more after
it finished, the command says so in one line.

Each kill aims at a phase by watching the process's output (and, for a checkpoint write, its temporary file) and
strikes the whole process tree: the training process, its loader workers and W&B's service (which runs in a
session of its own). The moments are drawn from a seeded generator; a failure prints the seed and every kill, and
``GOL_KILL_SEED=<seed>`` replays the same choices.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests_support import user_env

# The smoke cell, a checkpoint every iteration, one torch thread (the undisturbed run trains beside the killed one),
# in a named folder so that the command typed again continues the same run.
ARGS = ["scale=smoke", "schedule.checkpoint_period=1", "threads=1", "hydra.run.dir=cell"]
MAX_ITER = 4  # the smoke schedule's
# Kills to land in each phase; one more, during W&B's finish, ends the run: 20 in all.
AIM = {"train": 6, "checkpoint": 6, "eval": 4, "end": 3}
AT_LEAST = 3  # kills each phase must receive for the test to pass
RECORDS = ("record.json", "metrics.json", "per_category.json", "config.yaml")
GOL_TRAIN = Path(sys.executable).with_name("gol-train")


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces and ")"
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Attempt:
    """One `gol-train` typed in ``folder``; its output (stdout and stderr) is collected line by line as it comes."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(GOL_TRAIN), *ARGS], cwd=folder, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.lines: list[str] = []
        self.struck: list[str] = []  # the names of the processes a kill struck
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd, rest = self.proc.stdout.fileno(), b""
        while chunk := os.read(fd, 1 << 16):
            *done, rest = re.split(rb"[\r\n]", rest + chunk)  # tqdm redraws with \r
            self.lines.extend(line.decode(errors="replace") for line in done if line.strip())
        if rest.strip():
            self.lines.append(rest.decode(errors="replace"))

    def said(self, pattern: str) -> bool:
        return any(re.search(pattern, line) for line in list(self.lines))

    def wait_for(self, ready: Callable[[], bool], timeout: float = 240) -> bool:
        """Poll ``ready`` every few milliseconds; False when the process ended (or the time ran out) first."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            if ready():
                return True
            time.sleep(0.003)
        return False

    def kill(self) -> bool:
        """SIGKILL the process, its group (the loader workers) and every other process below it (W&B's service);
        True when it was still running, so the kill landed."""
        if self.proc.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGSTOP)  # nothing new starts while the tree is listed
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            with contextlib.suppress(OSError):
                self.struck.append(Path(f"/proc/{pid}/comm").read_text().strip())
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self._reader.join(timeout=60)
        return self.proc.returncode == -signal.SIGKILL

    def finish(self) -> int:
        code = self.proc.wait(timeout=600)
        self._reader.join(timeout=60)
        return code


def phase_at_death(lines: list[str]) -> str:
    """The phase a process was in when its output stopped: "train" (a step, or the loader feeding it),
    "checkpoint" (after a step's log line, saving), "eval", "end" (after the evaluation: the final records and
    W&B's finish), or "startup"."""
    if any("LVIS evaluation" in line for line in lines):
        return "end"
    phase, resumed = "startup", 0
    for line in lines:
        if m := re.search(r"resumed from .* at iteration (\d+)", line):
            resumed = int(m[1])
        elif "W&B run " in line:
            phase = "eval" if resumed == MAX_ITER else "train"
        elif re.search(r"iteration \d+/\d+: loss", line):
            phase = "checkpoint"
        elif m := re.search(r"checkpoint written: .*iter_(\d{7})\.pt", line):
            phase = "eval" if int(m[1]) == MAX_ITER else "train"
    return phase


def _tmp_files(folder: Path) -> set[str]:
    """Temporary files of ``gol.files.atomic_write`` in ``folder``."""
    return {p.name for p in folder.glob(".*.tmp")} if folder.is_dir() else set()


@dataclass
class Kill:
    attempt: int
    aim: str
    moment: str
    seconds: float = 0.0  # after the attempt started
    landed: bool = False
    phase: str = ""
    partial_write: bool = False  # the kill left a temporary file behind: it struck mid-write
    struck: list[str] = field(default_factory=list)  # the processes killed

    def __str__(self) -> str:
        where = f"landed in {self.phase}" if self.landed else "missed (the process had ended)"
        return (
            f"attempt {self.attempt}: aimed at {self.aim} ({self.moment}), {self.seconds:.2f} s in, {where}"
            + (", mid-write" if self.partial_write else "")
            + (f", struck {', '.join(self.struck)}" if self.struck else "")
        )


@dataclass
class Story:
    """What the test did, for the failure message."""

    seed: int
    kills: list[Kill] = field(default_factory=list)
    pace: Pace | None = None

    def __str__(self) -> str:
        return "\n".join([f"GOL_KILL_SEED={self.seed}, {self.pace}", *map(str, self.kills)])


@dataclass
class Pace:
    """How long the undisturbed run's last windows lasted on this machine (at its load): the late kills aim into
    them, so the run never finishes before they have landed."""

    evaluation: float  # seconds from the last checkpoint written to the evaluation's table
    final: float  # seconds from the evaluation's table to the record finished (W&B summary, final records)


def _pace(run_dir: Path) -> Pace:
    """The undisturbed run's :class:`Pace`, from its train.log times and its record's."""
    at = {}
    for line in (run_dir / "train.log").read_text().splitlines():
        stamp = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", line)
        if stamp and re.search(rf"checkpoint written: .*iter_{MAX_ITER:07d}\.pt|LVIS evaluation", line):
            at["table" if "LVIS" in line else "checkpoint"] = dt.datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S,%f")
    finished = dt.datetime.fromtimestamp((run_dir / "record.json").stat().st_mtime)  # local time, as the log's
    return Pace((at["table"] - at["checkpoint"]).total_seconds(), (finished - at["table"]).total_seconds())


def _resume_point(ckpts: Path) -> int:
    """The iteration the next attempt resumes from (``last.pt``'s, which every kill leaves whole)."""
    last = ckpts / "last.pt"
    return int(torch.load(last, map_location="cpu", weights_only=False)["iteration"]) if last.is_file() else 0


def _state(run_dir: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        return str(json.loads((run_dir / "record.json").read_text())["state"])
    return None


def _aim(
    phase: str, start: int, attempt: Attempt, run_dir: Path, rng: random.Random, pace: Callable[[], Pace]
) -> tuple[Callable[[], bool], float, str]:
    """When to kill ``attempt`` to hit ``phase``: (ready, delay after ready, the moment in words)."""
    ckpts = run_dir / "checkpoints"
    if phase == "train":  # during step k + 1, which starts after checkpoint k (or after W&B's start on a resume)
        k = rng.randint(start, max(start, min(start + 1, MAX_ITER - 2)))  # training stays ahead while kills aim at it
        line = r"W&B run \w+ \(" if k == start else rf"checkpoint written: .*iter_{k:07d}\.pt"
        delay = rng.uniform(0.02, 0.25)  # a step takes 0.3 s or more
        return (lambda: attempt.said(line)), delay, f"step {k + 1}, {delay:.2f} s after it began"
    if phase == "checkpoint":  # as the temporary file of checkpoint k appears
        k = rng.randint(start + 1, max(start + 1, min(start + 2, MAX_ITER - 1)))
        # A kill in the second write (the periodic file; last.pt is written first) leaves iteration k done: only
        # early in training, so that training stays ahead while kills aim at it.
        name = rng.choice([f"iter_{k:07d}.pt", "last.pt"]) if k <= MAX_ITER - 2 else "last.pt"
        before = _tmp_files(ckpts)  # partial files of earlier kills do not count

        def writing() -> bool:
            return attempt.said(rf"iteration {k}/\d+: loss") and any(
                t.startswith(f".{name}.") for t in _tmp_files(ckpts) - before
            )

        return writing, 0.0, f"writing {name} of iteration {k}"
    if phase == "eval":  # after the last checkpoint (or W&B's start on a resume after it)
        line = r"W&B run \w+ \(" if start == MAX_ITER else rf"checkpoint written: .*iter_{MAX_ITER:07d}\.pt"
        delay = rng.uniform(0.0, 0.7 * pace().evaluation)
        return (lambda: attempt.said(line)), delay, f"{delay:.2f} s into the evaluation"
    if phase == "end":  # the W&B summary and the final records
        delay = rng.uniform(0.0, 0.5 * pace().final)
        return (lambda: attempt.said("LVIS evaluation")), delay, f"{delay:.2f} s after the evaluation's table"
    delay = rng.uniform(0.0, 0.2)  # "finish": the record says finished; W&B closes its run, the process exits
    return (lambda: _state(run_dir) == "finished"), delay, f"W&B's finish, {delay:.2f} s after the record finished"


def _check_files(run_dir: Path, seen: dict[str, Any], story: Story) -> None:
    """Every record file parses; none that existed before is gone; every checkpoint loads whole."""
    for name in RECORDS:
        path = run_dir / name
        if not path.exists():
            assert name not in seen, f"{name} was lost\n{story}"
            continue
        text = path.read_text()
        try:
            seen[name] = yaml.safe_load(text) if name.endswith(".yaml") else json.loads(text)
        except (ValueError, yaml.YAMLError) as error:
            raise AssertionError(f"{name} is torn ({error})\n{story}") from None
    assert seen.get("record.json", {}).get("state", "running") in ("running", "finished"), story
    for path in sorted((run_dir / "checkpoints").glob("*.pt")):
        try:
            torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:
            raise AssertionError(f"{path.name} is torn ({type(error).__name__}: {error})\n{story}") from None


def _next_aim(need: Counter[str], start: int, rng: random.Random) -> str:
    if start < MAX_ITER and (open_ := [p for p in ("train", "checkpoint") if need[p] > 0]):
        return rng.choice(open_)
    return next((p for p in ("eval", "end") if need[p] > 0), "finish")


def _kill_until_finished(
    killed_dir: Path, data_root: Path, story: Story, rng: random.Random, pace: Callable[[], Pace]
) -> None:
    """Type the command in ``killed_dir`` and kill it at a moment aimed at a phase that still needs kills (training
    steps and checkpoint writes, then the evaluation, then the end), again and again, until the run is recorded
    finished; the record files and checkpoints are checked after every kill."""
    run_dir = killed_dir / "cell"
    need, seen = Counter(AIM), {}
    while _state(run_dir) != "finished":
        assert len(story.kills) < 2 * sum(AIM.values()), f"the run did not finish\n{story}"
        start = _resume_point(run_dir / "checkpoints")
        aim = _next_aim(need, start, rng)
        attempt = Attempt(killed_dir, user_env(killed_dir, GOL_DATA=str(data_root)))
        ready, delay, moment = _aim(aim, start, attempt, run_dir, rng, pace)
        kill = Kill(len(story.kills) + 1, aim, moment)
        story.kills.append(kill)
        if attempt.wait_for(ready):
            time.sleep(delay)
            kill.seconds = time.monotonic() - attempt.started
            kill.landed = attempt.kill()
            kill.struck = attempt.struck
        if not kill.landed:
            code = attempt.finish()
            assert code == 0, f"gol-train exited {code}:\n" + "\n".join(attempt.lines[-30:]) + f"\n{story}"
            break
        kill.phase = phase_at_death(attempt.lines)
        kill.partial_write = bool(_tmp_files(run_dir) | _tmp_files(run_dir / "checkpoints"))
        need[kill.phase] -= 1
        print(kill)
        _check_files(run_dir, seen, story)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_the_same_command_ends_as_an_undisturbed_run(
    tmp_path: Path, data_root: Path
) -> None:
    seed = int(os.environ.get("GOL_KILL_SEED") or random.randrange(2**31))
    rng, story = random.Random(seed), Story(seed)
    print(f"GOL_KILL_SEED={seed}")
    undisturbed_dir, killed_dir = tmp_path / "undisturbed", tmp_path / "killed"
    for folder in (undisturbed_dir, killed_dir):
        folder.mkdir()
    with open(tmp_path / "undisturbed.log", "wb") as out:  # the reference trains beside the killed runs
        undisturbed = subprocess.Popen([str(GOL_TRAIN), *ARGS], cwd=undisturbed_dir, stdout=out, stderr=out,
                                       env=user_env(undisturbed_dir, GOL_DATA=str(data_root)))  # fmt: skip

    @functools.cache
    def pace() -> Pace:
        assert undisturbed.wait(timeout=600) == 0, (tmp_path / "undisturbed.log").read_text()[-3000:]
        story.pace = _pace(undisturbed_dir / "cell")
        print(story.pace)
        return story.pace

    try:
        _kill_until_finished(killed_dir, data_root, story, rng, pace)
        pace()
    finally:
        if undisturbed.poll() is None:
            undisturbed.kill()
            undisturbed.wait()

    run_dir = killed_dir / "cell"
    # Typed once more after the run finished: refused in one line, and the dead process's claim is no obstacle.
    again = subprocess.run([str(GOL_TRAIN), *ARGS], cwd=killed_dir, env=user_env(killed_dir, GOL_DATA=str(data_root)),
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    errors = [line for line in again.stderr.splitlines() if "Error" in line]
    assert again.returncode == 2 and len(errors) == 1 and "Traceback" not in again.stderr, again.stderr[-3000:]
    assert "RunFolderError" in errors[0] and "already holds a finished run" in errors[0], again.stderr[-3000:]

    reference = undisturbed_dir / "cell"
    for name in ("metrics.json", "per_category.json"):
        assert json.loads((run_dir / name).read_text()) == json.loads((reference / name).read_text()), story
    weights = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    expected = torch.load(reference / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert weights["iteration"] == MAX_ITER and weights["model"].keys() == expected["model"].keys()
    assert all(torch.equal(weights["model"][k], expected["model"][k]) for k in expected["model"]), story
    record = json.loads((run_dir / "record.json").read_text())
    assert record["state"] == "finished" and record["iteration"] == MAX_ITER, story
    leftovers = _tmp_files(run_dir) | _tmp_files(run_dir / "checkpoints") | {p.name for p in run_dir.glob(".claim*")}
    assert not leftovers, f"{sorted(leftovers)}\n{story}"
    ids = {p.name.rsplit("-", 1)[1] for p in (run_dir / "wandb").glob("offline-run-*")}
    assert ids == {record["run_id"]} and record["wandb"]["id"] == record["run_id"], f"{ids}\n{story}"

    # Kills struck the whole tree: the training process, its loader workers, W&B's service.
    before_end = [k for k in story.kills if k.landed and k.phase != "end"]  # W&B's service may have ended by then
    assert all(k.struck.count("wandb-core") == 1 for k in before_end), story
    assert any(k.struck.count("pt_data_worker") == 2 for k in before_end if k.phase != "eval"), story
    landed = Counter(k.phase for k in story.kills if k.landed)
    assert sum(landed.values()) >= 20, f"{landed}\n{story}"
    assert all(landed[phase] >= AT_LEAST for phase in AIM), f"{landed}\n{story}"
