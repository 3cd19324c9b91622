"""Every command of README.md and launch/README.md, run verbatim as a user types it (rules: readme_commands.py).

Each shell block runs as one session in a fresh folder, with the package's console scripts on PATH (an active
virtual environment), no GOL_*, WANDB_* or SLURM_* variables and a fresh HOME (no W&B login, so W&B goes
offline as documented). Every command either finishes and leaves what the README says it leaves, or exits
non-zero with a one-line message naming what this machine lacks (LVIS, COCO images, weights, SLURM, a W&B
login, a GPU) and how to provide it, and no traceback.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from readme_commands import Block, Command, all_blocks, parse_blocks, smoke_twins, strip_comment

from launch.sweep import sweep_status
from tests_support import checkout_copy, user_env

BLOCKS = all_blocks()
TWINS = smoke_twins(BLOCKS)
# What a command may lack here, named by its one-line error.
MISSING_HERE = ("LVIS", "COCO", "GOL_WEIGHTS", "SLURM", "wandb login", "CUDA")
# Lines Hydra adds around a failed sweep cell's one-line message.
HYDRA_BOILERPLATE = ("Error executing job with overrides", "HYDRA_FULL_ERROR")


@dataclass
class Outcome:
    command: Command
    returncode: int
    stdout: str
    stderr: str
    new_files: list[str]  # under ./outputs, made by this command


def _runs(block: Block) -> list[Command]:
    return [c for c in block.commands if c not in TWINS]


def _trains(command: Command) -> bool:
    words = command.words
    return "gol-train" in words and not {"--cfg", "--help"} & set(words) and "hydra.launcher.dry_run=true" not in words


def _marks(block: Block) -> list[pytest.MarkDecorator]:
    marks = []
    if any("local_cluster" in c.text or "launch/cluster/" in c.text for c in block.commands):
        marks.append(pytest.mark.slurm)
    if any(_trains(c) for c in _runs(block)):
        marks.append(pytest.mark.slow)
    return marks


def _user_env(home: Path) -> dict[str, str]:
    """A user's shell with the virtual environment active; no SLURM set-up (the cluster block makes its own)."""
    env = {k: v for k, v in user_env(home).items() if not k.startswith(("SLURM_", "PYTEST_"))}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and not p.endswith("launch/cluster/bin")]
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), *path])
    return env


def run_block(block: Block, tmp_path: Path, timeout_s: float = 1500) -> list[Outcome]:
    """Run the block's commands (smoke twins standing in) in one bash session; one Outcome per command."""
    cwd, logs, home = tmp_path / "work", tmp_path / "logs", tmp_path / "home"
    for folder in (cwd, logs, home):
        folder.mkdir()
    if block.uses_repo_scripts():
        checkout_copy(cwd)
    commands = _runs(block)
    script = ["set +e"]
    for i, command in enumerate(commands):
        script += [
            f"{{ {command.text}\n}} >{logs}/{i}.out 2>{logs}/{i}.err </dev/null",
            f"echo $? >{logs}/{i}.rc",
            f"find outputs -type f 2>/dev/null | sort >{logs}/{i}.files",
        ]
    script.append("wait")  # commands sent to the background (nohup ... &)
    (logs / "block.sh").write_text("\n".join(script) + "\n")
    process = subprocess.Popen(["bash", str(logs / "block.sh")], cwd=cwd, env=_user_env(home),
                               start_new_session=True)  # fmt: skip
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"block {block.id} did not finish within {timeout_s:.0f} s") from None
    outcomes, before = [], set()
    for i, command in enumerate(commands):
        files = set((logs / f"{i}.files").read_text().split())
        outcomes.append(Outcome(command, int((logs / f"{i}.rc").read_text()), (logs / f"{i}.out").read_text(),
                                (logs / f"{i}.err").read_text(), sorted(files - before)))  # fmt: skip
        before = files
    return outcomes


def _last_message(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and not any(b in line for b in HYDRA_BOILERPLATE)]
    return lines[-1] if lines else ""


def _sweep_folders(new_files: list[str]) -> list[str]:
    return sorted(str(Path(f).parent) for f in new_files if f.endswith("/multirun.yaml"))


def check_left_behind(outcome: Outcome, cwd: Path) -> None:
    """What the README says the command leaves: records of finished runs where it says, tables, a config."""
    words, out = outcome.command.words, outcome.stdout
    program = words[0]
    if program == "gol-train" and "--cfg" in words:
        assert "activation" in yaml.safe_load(out), out[:500]
    elif program == "gol-train" and "hydra.launcher.dry_run=true" in words:
        assert "nothing queued (hydra.launcher.dry_run=true)" in out and not outcome.new_files
    elif program == "gol-train" and _queues(words):
        # The SLURM presets return once the cells are queued; a later `gol-sweep wait` in the block waits.
        (sweep,) = _sweep_folders(outcome.new_files)
        assert re.search(rf"gol-sweep wait \S*{re.escape(sweep)}`", outcome.stderr), outcome.stderr[-2000:]
    elif program == "gol-train":
        records = [f for f in outcome.new_files if f.endswith("/record.json")]
        assert records, f"no run record written; new files: {outcome.new_files[:10]}"
        for path in records:
            record = json.loads((cwd / path).read_text())
            assert record["state"] == "finished", (path, record.get("error"))
        experiment = next((w.split("=", 1)[1] for w in words if w.startswith("experiment=")), None)
        if experiment is not None or "-m" in words:
            (sweep,) = _sweep_folders(outcome.new_files)
            if experiment is not None:
                assert sweep == f"outputs/sweeps/{experiment}" + ("-smoke" if "scale=smoke" in words else "")
            else:
                assert sweep.startswith("outputs/multirun/")
            states = {s.state for s in sweep_status(cwd / sweep, query_slurm=False)}
            assert states == {"finished"}, states
        else:
            assert all(p.startswith("outputs/runs/") for p in records), records
    elif program in ("gol-tables", "gol-figures"):
        if "--out" in words:
            folder = cwd / words[words.index("--out") + 1]
            assert folder.is_dir() and any(folder.iterdir()), f"{folder} is empty"
        else:
            assert out.strip(), "nothing on stdout"
    elif program == "gol-sweep" and words[1] == "plan":
        assert "nothing queued (hydra.launcher.dry_run=true)" in out and not outcome.new_files
    elif program == "gol-sweep":
        states = [line.split()[0] for line in out.splitlines()[1:-1]]
        # `status` may follow a launch that only queued the cells; `wait` returns when every one has ended.
        expected = {"finished"} if words[1] == "wait" else {"finished", "running", "missing"}
        assert states and set(states) <= expected and (words[1] != "wait" or set(states) == expected), out


def _queues(words: list[str]) -> bool:
    """Whether this gol-train returns once its cells are queued (a SLURM preset without hydra.launcher.wait=true)."""
    slurm = any(w in ("hydra/launcher=slurm", "hydra/launcher=local_cluster") for w in words)
    return slurm and "hydra.launcher.wait=true" not in words


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id, marks=_marks(b)) for b in BLOCKS])
def test_readme_block_runs_verbatim(block: Block, tmp_path: Path) -> None:
    failures = []
    for outcome in run_block(block, tmp_path):
        both = outcome.stdout + outcome.stderr
        where = f"{outcome.command} (exit {outcome.returncode})"
        if "Traceback" in both:
            failures.append(f"{where}: traceback\n{both[-3000:]}")
        elif outcome.returncode != 0:
            message = _last_message(outcome.stderr or outcome.stdout)
            if not any(name in message for name in MISSING_HERE):
                failures.append(f"{where}: its error names nothing this machine lacks: {message!r}\n{both[-2000:]}")
        else:
            try:
                check_left_behind(outcome, tmp_path / "work")
            except AssertionError as error:
                failures.append(f"{where}: {error}\n{outcome.stderr[-2000:]}")
    assert not failures, "\n\n".join(failures)


def test_every_readme_has_commands_and_every_twin_runs() -> None:
    """The READMEs' blocks parse, the Makefile targets aside; each twin stands in for a command of its README."""
    for readme in ("README.md", "launch/README.md"):
        assert parse_blocks(readme), f"{readme} has no shell block"
    commands = [c for b in BLOCKS for c in b.commands]
    assert any(c.words[:2] == ["gol-train", "-m"] for c in commands)
    for command, twin in TWINS.items():
        assert "scale=smoke" in twin.words or "-smoke" in twin.text, (command, twin)
        assert twin in commands and twin not in TWINS


def test_strip_comment_keeps_quoted_hashes() -> None:
    assert strip_comment("gol-train -m a=1,2   # a sweep") == "gol-train -m a=1,2"
    assert strip_comment("echo '# not a comment' # but this is") == "echo '# not a comment'"
    assert strip_comment("gol-train tags=[a#b]") == "gol-train tags=[a#b]"
