"""A minimal Hydra app for the launcher tests: appends one line per attempt to ``attempts.txt`` in its output
folder, optionally holds a W&B offline run, waits ``hold_s`` seconds on its first attempt only (the "resume"
of a requeued job is to see the earlier attempt and finish), then writes ``done.txt``.

    python tests/launch/toy_app.py -m hydra/launcher=local_cluster x=1,2,3 hydra.searchpath=[file://<repo>/conf]
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="toy_conf", config_name="toy")
def main(cfg: DictConfig) -> int:
    out = Path(HydraConfig.get().runtime.output_dir)
    attempts = out / "attempts.txt"
    with attempts.open("a") as f:
        f.write(f"job={HydraConfig.get().job.id} slurm={os.environ.get('SLURM_JOB_ID')} x={cfg.x}\n")
    first_attempt = len(attempts.read_text().splitlines()) == 1
    run = None
    if cfg.wandb:
        import wandb

        run = wandb.init(mode="offline", dir=str(out), project="gol-launch-tests", id=f"toy{cfg.x}", resume="allow")
    log.info("attempt started (first: %s)", first_attempt)
    if first_attempt:
        time.sleep(cfg.hold_s)
    if run is not None:
        run.finish()
    (out / "done.txt").write_text(f"{cfg.x}\n")
    return int(cfg.x)


if __name__ == "__main__":
    main()
