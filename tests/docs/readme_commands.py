"""The shell commands of the READMEs, as the README-verbatim test runs them.

- A command is a line of a fenced block whose info string is ``bash`` or ``sh`` (other blocks show output,
  layouts or synopses); its trailing ``# comment`` is dropped, nothing else is touched.
- ``make ...`` lines are the Makefile targets: ``make test`` is CI itself, ``make demo`` has its own test.
- A command that cannot run at this scale has a *smoke twin* in the same README: the same words plus
  ``scale=smoke``, with a paper table's sweep folder ``outputs/sweeps/<experiment>`` as
  ``outputs/sweeps/<experiment>-smoke``. The twin runs where it stands; the command itself is not run.
- Each block is one shell session, its commands in order (``source`` carries over), in a fresh folder: an
  empty one, or a copy of the checkout when a command runs one of the repository's own scripts.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READMES = ("README.md", "launch/README.md")
SHELL_BLOCKS = ("bash", "sh", "shell")
_SMOKE_FOLDER = re.compile(r"(outputs/sweeps/[^/\s]+)-smoke")


@dataclass(frozen=True)
class Command:
    text: str
    readme: str
    line: int

    @property
    def words(self) -> list[str]:
        return shlex.split(self.text)

    def __str__(self) -> str:
        return f"{self.readme}:{self.line}: {self.text}"


@dataclass
class Block:
    readme: str
    line: int
    commands: list[Command] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.readme}:{self.line}"

    def uses_repo_scripts(self) -> bool:
        """A command runs a script of the checkout (``launch/cluster/start.sh``): run the block in a copy of it."""
        for command in self.commands:
            words = [w for w in command.words if w not in ("sudo", "source", ".")]
            if words and "/" in words[0] and (REPO / words[0]).exists():
                return True
        return False


def strip_comment(line: str) -> str:
    """``line`` without its trailing shell comment (a ``#`` at a word start, outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def parse_blocks(readme: str) -> list[Block]:
    """Every shell block of ``REPO/readme`` with its commands (Makefile targets left out)."""
    blocks: list[Block] = []
    current: Block | None = None
    for number, line in enumerate((REPO / readme).read_text().splitlines(), start=1):
        fence = line.strip()
        if fence.startswith("```"):
            if current is None and fence[3:].strip() in SHELL_BLOCKS:
                current = Block(readme, number)
            elif current is not None:
                blocks.append(current)
                current = None
            continue
        if current is not None:
            text = strip_comment(line).strip()
            if text and not text.startswith("make "):
                current.commands.append(Command(text, readme, number))
    return [b for b in blocks if b.commands]


def _unsmoked(command: Command) -> tuple[str, ...]:
    return tuple(_SMOKE_FOLDER.sub(r"\1", w) for w in command.words if w != "scale=smoke")


def smoke_twins(blocks: list[Block]) -> dict[Command, Command]:
    """Command -> its smoke twin, within each README."""
    twins: dict[Command, Command] = {}
    commands = [c for b in blocks for c in b.commands]
    for command in commands:
        for twin in commands:
            if (
                twin.readme == command.readme
                and twin != command
                and twin.words != command.words
                and _unsmoked(twin) == tuple(command.words)
            ):
                twins[command] = twin
    return twins


def all_blocks() -> list[Block]:
    return [block for readme in READMES for block in parse_blocks(readme)]
