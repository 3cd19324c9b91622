"""``gol-sweep wait <sweep dir>``: block until every cell of a queued sweep has ended, from any shell.

The SLURM presets return once the cells are queued (``hydra.launcher.wait=false``), so a sweep survives the
login shell that launched it. ``wait`` follows the sweep as ``gol-sweep status`` reads it (the run records and the
sweep's SLURM jobs): it returns when no job of the sweep is queued or running and no cell is running, prints the
status table, and exits 0 when every cell finished, 1 otherwise (the table says which failed, and why); 2 when
``squeue`` stops answering. Stopping it (Ctrl-C, a closed shell) stops only the waiting: the jobs go on.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from launch.slurm import SlurmUnavailableError
from launch.sweep import STATES, CellStatus, format_status, live_job_ids, sweep_status

log = logging.getLogger(__name__)

FIRST_POLL_S = 2.0  # polls start often (short smoke sweeps) and slow down to MAX_POLL_S (days-long sweeps)
MAX_POLL_S = 60.0
MAX_UNANSWERED = 10  # polls in a row without an answer from squeue before giving up


def wait_for_sweep(
    sweep_dir: Path,
    expected: Sequence[Sequence[str]] | None = None,
    *,
    stale_after: timedelta,
    first_poll_s: float = FIRST_POLL_S,
    max_poll_s: float = MAX_POLL_S,
) -> list[CellStatus]:
    """Poll until nothing of the sweep is queued or running; the final statuses. Logs each change of counts."""
    poll, last, unanswered = first_poll_s, "", 0
    slurm_here = shutil.which("squeue") is not None
    while True:
        live = live_job_ids(sweep_dir)
        if live is None and slurm_here:
            # SLURM did not answer (a busy slurmctld): queued cells have no record yet, so nothing can be decided.
            unanswered += 1
            if unanswered >= MAX_UNANSWERED:
                raise SlurmUnavailableError(f"squeue did not answer {unanswered} times in a row; try again later")
        else:
            unanswered = 0
            statuses = sweep_status(sweep_dir, expected, live=live, query_slurm=False, stale_after=stale_after)
            counts = Counter(s.state for s in statuses)
            queued = 0 if live is None else len(live)
            line = ", ".join([*(f"{counts[k]} {k}" for k in STATES if counts[k]), f"{queued} SLURM job(s) live"])
            if line != last:
                log.info("%s: %s", sweep_dir, line)
                last = line
            if queued == 0 and counts["running"] == 0:
                return statuses
        time.sleep(poll)
        poll = min(max_poll_s, poll * 1.5)


def run_wait(sweep_dir: Path, expected: Sequence[Sequence[str]] | None, *, stale_after: timedelta) -> int:
    """The ``wait`` command: 0 when every cell finished, 1 when some did not, 130 when stopped by the user."""
    try:
        statuses = wait_for_sweep(sweep_dir, expected, stale_after=stale_after)
    except KeyboardInterrupt:
        log.warning("stopped waiting; the sweep's jobs go on (`gol-sweep status %s`)", sweep_dir)
        return 130
    except SlurmUnavailableError as error:
        log.error("gol-sweep: %s; the sweep's jobs go on (`gol-sweep status %s`)", error, sweep_dir)
        return 2
    sys.stdout.write(format_status(statuses) + "\n")
    unfinished = [s for s in statuses if s.state != "finished"]
    if unfinished:
        log.error("%d of %d cell(s) did not finish (see the table); launching the sweep again runs only them",
                  len(unfinished), len(statuses))  # fmt: skip
        return 1
    return 0
