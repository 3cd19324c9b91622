"""Command-line overrides checked against ``conf/`` before Hydra composes anything.

Hydra refuses an unknown option too, but with a multi-line message and only after scanning its plugins; a
misspelt option (``activation=gumbell``, ``experiment=losess``) or a misspelt top-level key (``activaton=gumbel``)
is answered here in one line that names the fix::

    unknown activation option 'gumbell' (did you mean 'gumbel'?); choose one of: aglu, gumbel, probit, sigmoid, softmax
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob
from hydra.errors import HydraException

from gol.config.train import TrainConfig

# ``local`` is the optional, untracked machine override; other ``hydra/...`` groups are Hydra's own.
_NOT_CHECKED = ("local",)
# Options that moved: (group, option) -> what to type now.
MOVED = {("loss", "gol"): "recipe=gol (DropLoss with the Gumbel activation and GOL's official settings)"}


def group_options(conf_dir: Path) -> dict[str, list[str]]:
    """Every config group under ``conf_dir`` (``activation``, ``hydra/launcher``, ...) with its YAML options."""
    groups: dict[str, list[str]] = {}
    for folder, _, files in sorted(os.walk(conf_dir, followlinks=True)):  # conf/experiment links to experiments/
        group = Path(folder).relative_to(conf_dir).as_posix()
        options = sorted(Path(f).stem for f in files if f.endswith(".yaml"))
        if group != "." and options:
            groups[group] = options
    for group in [g for g in groups if g.startswith("hydra/")]:  # plus Hydra's and its plugins' (basic, submitit_*)
        groups[group] = sorted({*groups[group], *_hydra_options(group)})
    return groups


def _hydra_options(group: str) -> list[str]:
    import hydra._internal.core_plugins.basic_launcher  # noqa: F401  (stores hydra/launcher/basic)

    import hydra_plugins.hydra_submitit_launcher.config  # noqa: F401  (stores submitit_local, submitit_slurm)

    return [Path(name).stem for name in ConfigStore.instance().list(group)]


def _override_tokens(argv: Iterable[str]) -> list[str]:
    """The ``key=value`` / ``~key`` tokens of a Hydra command line (flags and their values left out)."""
    return [a for a in argv if not a.startswith("-") and ("=" in a or a.startswith("~"))]


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_overrides(argv: Sequence[str], conf_dir: Path) -> str | None:
    """One line naming the first unknown option or top-level key in ``argv`` and its fix; None if all are known.

    Tokens that Hydra could not parse are left for Hydra to report.
    """
    groups = group_options(conf_dir)
    top_level = {name for name in groups if "/" not in name} | {f.name for f in dataclasses.fields(TrainConfig)}
    top_level |= {"hydra"}
    parser = OverridesParser.create()
    for token in _override_tokens(argv):
        try:
            (override,) = parser.parse_overrides([token])
        except HydraException:
            continue
        key = override.key_or_group
        if (
            override.is_delete()
            or override.is_add()
            or key in _NOT_CHECKED
            or (key.startswith("hydra/") and key not in groups)
        ):
            continue
        if key in groups:
            if isinstance(override.value(), Glob):
                continue  # glob(...) selects among the existing options
            values = (list(override.sweep_string_iterator()) if override.is_sweep_override()
                      else [override.get_value_element_as_str()])  # fmt: skip
            for value in values:
                if (key, value) in MOVED:
                    return f"{key}={value} is now {MOVED[key, value]}: type that instead"
                if value not in groups[key] and value != "null":
                    return (f"unknown {key} option '{value}'{_did_you_mean(value, groups[key])}; "
                            f"choose one of: {', '.join(groups[key])}")  # fmt: skip
            continue
        head = key.split(".")[0]
        if head not in top_level:
            return (f"unknown key '{key}'{_did_you_mean(head, sorted(top_level))}; `gol-train --help` lists the "
                    f"groups and the config, `+{key}=...` adds a key that is not in it")  # fmt: skip
    return None
