"""Hydra entry point of one ablation cell: ``gol-train`` (also ``python -m gol.train``).

gol-train                                   # the embedded dataset, tiny detector, on whatever device exists
gol-train activation=gumbel loss=droploss   # one cell
gol-train -m activation=sigmoid,softmax,gumbel
gol-train experiment=activations            # a paper table (experiments/), swept as a multirun
gol-train experiment=activations scale=smoke  # the same table at laptop scale
gol-train --cfg job                         # print the composed config
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from gol.config import CONF_DIR, register_configs
from gol.config.choices import check_overrides
from gol.config.resolvers import register_resolvers
from gol.engine import RunClaimedError, RunContext, RunFolderError
from gol.engine import train as train_cell
from gol.files import DiskFullError
from gol.loop import NonFiniteLossError
from gol.provenance import git_state

log = logging.getLogger(__name__)


def context_from_hydra() -> RunContext:
    """Run folder, the cell's group choices and overrides, as Hydra resolved them for this job."""
    hc = HydraConfig.get()
    choices = dict(hc.runtime.choices)
    excluded = set(hc.job.config.override_dirname.exclude_keys)
    overrides = [o for o in hc.overrides.task if o.split("=", 1)[0].lstrip("+~") not in excluded]
    commit, dirty = git_state()
    return RunContext(
        run_dir=Path(hc.runtime.output_dir),
        choices={str(k): None if v is None else str(v) for k, v in choices.items()},
        overrides=overrides,
        experiment=choices.get("experiment"),
        git_commit=commit,
        git_dirty=dirty,
        skip_finished=hc.mode == RunMode.MULTIRUN,
    )


# Bad input (config values, files, folders): one line naming the problem and the fix, not a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, RunFolderError, NonFiniteLossError, DiskFullError)


class CellError(CompactHydraException):
    """A sweep cell refused its input: Hydra reports it in one line (its message), without a traceback."""


# Cells of a sweep run in this very process (Hydra's basic launcher) that refused their input; None in a process
# that did not start the sweep (a submitit job), where a refused cell is a failed job for the launcher to report.
_failed_here: list[str] | None = None


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        metrics = train_cell(cfg, context_from_hydra())
    except RunClaimedError as error:
        if HydraConfig.get().mode == RunMode.RUN:
            log.error("RunClaimedError: %s", error)
            raise SystemExit(2) from None
        log.warning("%s; this launch leaves the cell to it", error)  # a second launch of the same sweep
        return None
    except USER_ERRORS as error:
        message = f"{type(error).__name__}: {error}"
        if HydraConfig.get().mode == RunMode.RUN:
            log.error("%s", message)
            raise SystemExit(2) from None
        cell = f"cell {HydraConfig.get().runtime.output_dir} failed: {message}"
        if _failed_here is None:
            raise CellError(cell) from None
        log.error("%s", cell)  # the sweep goes on with its other cells; main() exits 2 at the end
        _failed_here.append(cell)
        return None
    return (metrics.get("segm") or metrics.get("bbox") or {}).get("AP")


def _accept_plus_experiment(argv: list[str]) -> list[str]:
    """``+experiment=NAME`` means ``experiment=NAME``: the group is already in the defaults list (as null)."""
    return [a[1:] if a.startswith("+experiment=") else a for a in argv]


def main() -> None:
    sys.argv = _accept_plus_experiment(sys.argv)
    error = check_overrides(sys.argv[1:], Path(CONF_DIR))
    if error is not None:
        sys.stderr.write(f"gol-train: error: {error}\n")
        raise SystemExit(2)
    register_configs()
    register_resolvers()
    global _failed_here
    _failed_here = []
    _hydra_main()
    if _failed_here:
        log.error("%d cell(s) of the sweep failed (each above; `gol-sweep status` lists them), the first: %s",
                  len(_failed_here), _failed_here[0])  # fmt: skip
        raise SystemExit(2)


if __name__ == "__main__":
    main()
