"""The local SLURM cluster for tests marked ``slurm``: started once per session by launch/cluster/start.sh.

Each session gets its own state folder and free ports, so two test runs on one machine do not share a cluster.
SLURM is installed on first use when that is possible (root and apt-get); otherwise the tests are skipped,
except under CI (``CI=true``), where a cluster that cannot be set up is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPTS = REPO / "launch" / "cluster"
TOY_APP = Path(__file__).resolve().parent / "toy_app.py"
TOY_CONF = Path(__file__).resolve().parent / "toy_conf"
SLURM_TOOLS = ("slurmctld", "slurmd", "sinfo", "munged")


@dataclass(frozen=True)
class LocalCluster:
    state_dir: Path
    slurm_conf: Path
    partition: str
    gpus: int


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason}; CI must run the slurm tests", pytrace=False)
    pytest.skip(reason)


def _free_port_pair() -> int:
    """A port p with p and p + 1 free (slurmctld, slurmd)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports found")


def _script(name: str, env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER_SCRIPTS / name)], env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not all(shutil.which(t) for t in SLURM_TOOLS):
        if not is_root or shutil.which("apt-get") is None:
            _unavailable("SLURM is not installed and cannot be here (launch/cluster/install.sh needs root and apt-get)")
        done = _script("install.sh", dict(os.environ), timeout_s=900)
        if done.returncode != 0:
            pytest.fail(f"launch/cluster/install.sh failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}", pytrace=False)
    if not is_root:
        _unavailable("the local SLURM cluster needs root (slurmd starts jobs as their user)")

    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "GOL_SLURM_DIR": str(state), "GOL_SLURM_PORT": str(_free_port_pair()), "GOL_SLURM_GPUS": "2"}
    done = _script("start.sh", env, timeout_s=90)
    if done.returncode != 0:
        _script("stop.sh", env, timeout_s=60)
        pytest.fail(f"launch/cluster/start.sh failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}", pytrace=False)

    conf = state / "slurm.conf"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", str(conf))
        mp.setenv("PATH", f"{CLUSTER_SCRIPTS / 'bin'}{os.pathsep}{os.environ['PATH']}")
        try:
            yield LocalCluster(state_dir=state, slurm_conf=conf, partition="debug", gpus=2)
        finally:
            _script("stop.sh", env, timeout_s=90)


@dataclass
class GolTrainProcess:
    """A ``python -m gol.train`` process in its own process group (with any local jobs it starts)."""

    process: subprocess.Popen[str]

    def running(self) -> bool:
        return self.process.poll() is None

    def finish(self, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
        """Wait for it; past ``timeout_s`` kill its process group and fail with the end of its output."""
        try:
            out, err = self.process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.process.communicate()
            tail = f"{out[-2000:]}{err[-2000:]}"
            raise AssertionError(f"gol-train did not end within {timeout_s:.0f} s:\n{tail}") from None
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, out, err)

    def kill(self) -> None:
        if self.running():
            os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def gol_train() -> Callable[..., GolTrainProcess]:
    """``gol_train(*args, cwd=..., env={...})`` starts ``python -m gol.train *args`` (stdout and stderr piped,
    text). W&B is offline with HOME=cwd (no login), and no GOL_* or WANDB_* setting of the calling shell leaks
    in; ``env`` adds or replaces variables (SLURM_CONF comes from the cluster fixture)."""

    def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> GolTrainProcess:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GOL_", "WANDB_"))}
        return GolTrainProcess(subprocess.Popen(
            [sys.executable, "-m", "gol.train", *args], cwd=cwd, text=True, start_new_session=True,
            env={**base, "HOME": str(cwd), "WANDB_MODE": "offline", **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ))  # fmt: skip

    return start


@pytest.fixture
def toy_command() -> Callable[..., list[str]]:
    """``toy_command(*overrides)``: the command line of the toy Hydra app (tests/launch/toy_app.py) in multirun
    mode, with the project's launcher presets (conf/hydra/launcher) on its search path."""

    def command(*overrides: str) -> list[str]:
        return [sys.executable, str(TOY_APP), "-m", f"hydra.searchpath=[file://{REPO / 'conf'}]", *overrides]

    return command


@pytest.fixture
def launcher_preset() -> Callable[..., DictConfig]:
    """``launcher_preset(name, *overrides)``: the toy app's ``hydra.launcher`` from conf/hydra/launcher/<name>."""

    def compose_preset(name: str, *overrides: str) -> DictConfig:
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(TOY_CONF), version_base="1.3"):
                cfg = compose(
                    config_name="toy",
                    overrides=[f"hydra.searchpath=[file://{REPO / 'conf'}]", f"hydra/launcher={name}", *overrides],
                    return_hydra_config=True,
                )
        finally:
            GlobalHydra.instance().clear()
        return cfg.hydra.launcher

    return compose_preset
