"""Log regenerated tables to W&B as tables of one summary run (offline unless WANDB_MODE says otherwise).

Each table is logged as ``tables/<experiment>`` (a ``wandb.Table`` holding the CSV layout) and its Markdown
text is kept in the run summary as ``markdown/<experiment>``. In offline mode this writes a real run folder
``<dir>/wandb/offline-run-*`` that ``wandb sync`` uploads later.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, cast

import pandas as pd

from analysis.render import to_csv, to_markdown
from analysis.tables import Table


def log_tables(
    tables: Sequence[Table], *, project: str, directory: Path, mode: str | None = None, name: str | None = None
) -> Path:
    """Log `tables` to a new W&B run of `project` written under `directory`; returns the run's folder.

    `mode` defaults to ``WANDB_MODE`` or ``"offline"`` (the project's default).
    """
    import wandb

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    experiments = [table.experiment for table in tables]
    run = wandb.init(
        project=project,
        dir=str(directory),
        mode=cast(Literal["online", "offline", "disabled"], mode or os.environ.get("WANDB_MODE", "offline")),
        job_type="tables",
        group="analysis",
        name=name or f"tables-{'-'.join(experiments)}",
        config={"experiments": experiments},
        settings=wandb.Settings(silent=True),
    )
    try:
        for table in tables:
            frame = pd.read_csv(io.StringIO(to_csv(table)), dtype=str, keep_default_na=False)
            run.log({f"tables/{table.experiment}": wandb.Table(dataframe=frame)})
            run.summary[f"markdown/{table.experiment}"] = to_markdown(table)
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
    return run_dir
