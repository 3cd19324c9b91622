import json
import time

import pytest

from gol import record
from gol.config.logger import LoggerConf
from gol.tracking import Tracker, has_login, resolve_mode, run_id_for


@pytest.fixture
def no_login(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)


def test_mode_without_login_is_offline(no_login):
    assert not has_login()
    assert resolve_mode(None) == "offline"


def test_online_without_login_falls_back_with_one_warning(no_login, caplog):
    assert resolve_mode("online") == "offline"
    assert sum("no login" in r.message for r in caplog.records) == 1


def test_env_mode_is_used_and_unknown_mode_refused(no_login, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode(None) == "disabled"
    with pytest.raises(ValueError, match="logger.mode"):
        resolve_mode("sometimes")


def test_netrc_login_is_detected(no_login, tmp_path):
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert has_login()


def test_run_id_is_stable_per_folder(tmp_path):
    assert run_id_for(tmp_path / "a") == run_id_for(tmp_path / "a")
    assert run_id_for(tmp_path / "a") != run_id_for(tmp_path / "b")


def test_offline_run_writes_real_files_and_resumes_same_id(no_login, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rid = run_id_for(run_dir)
    for attempt in range(2):  # a requeued job continues the same run id
        tracker = Tracker(
            LoggerConf(project="gol-test"),
            run_dir=run_dir,
            run_id=rid,
            group="g",
            name="n",
            config={"loss": {"lambda_": 0.0011}, "attempt": attempt},
        )
        assert tracker.info["id"] == rid and tracker.info["mode"] == "offline"
        tracker.log({"train/loss": 1.0}, iteration=attempt + 1)
        tracker.summarize(
            {"segm": {"AP": 0.5}, "bbox": {"AP": 0.25}},
            {"categories": [{"id": 1, "name": "a", "bbox_AP": 0.1, "segm_AP": None}]},
        )
        tracker.finish("finished")
        time.sleep(1.1)  # offline folders are named to the second; a real requeue comes seconds later
    runs = sorted((run_dir / "wandb").glob(f"offline-run-*-{rid}"))
    assert len(runs) == 2
    for folder in runs:
        assert (folder / f"run-{rid}.wandb").stat().st_size > 0


def test_disabled_logger_writes_nothing(tmp_path):
    tracker = Tracker(LoggerConf(enabled=False), run_dir=tmp_path, run_id="x", group="g", name="n", config={})
    assert tracker.info is None
    tracker.log({"a": 1.0}, iteration=1)
    tracker.finish("finished")
    assert list(tmp_path.iterdir()) == []


def test_record_life_cycle(tmp_path):
    rec = record.RunRecord(tmp_path, record.Record(run_id="r", state="running"))
    rec.update(iteration=3)
    assert record.read(tmp_path).iteration == 3
    rec.finish(metrics={"bbox": {"AP": 0.1}}, per_category=None)
    data = json.loads((tmp_path / "record.json").read_text())
    assert data["state"] == "finished" and data["finished_at"] and data["schema"] == record.SCHEMA
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"bbox": {"AP": 0.1}}


def test_failed_record_keeps_first_line_of_error(tmp_path):
    rec = record.RunRecord(tmp_path, record.Record(run_id="r", state="running"))
    rec.fail(ValueError("bad lambda\nsecond line"))
    assert record.read(tmp_path).error == "ValueError: bad lambda"


def _closed_port() -> int:
    """A local port nothing listens on: connections to it are refused at once."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_wandb_with_a_login_logs_offline_and_trains_on(no_login, monkeypatch, tmp_path, caplog):
    """A compute node without internet, a W&B key in the environment: the run logs offline under its id."""
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{_closed_port()}")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rid = run_id_for(run_dir)
    started = time.monotonic()
    tracker = Tracker(
        LoggerConf(project="gol-test", mode="online", init_timeout_s=3.0),
        run_dir=run_dir,
        run_id=rid,
        group="g",
        name="n",
        config={},
    )
    assert time.monotonic() - started < 60  # bounded by init_timeout_s, plus the offline start
    assert tracker.info["mode"] == "offline" and tracker.info["id"] == rid
    warnings = [r.getMessage() for r in caplog.records if "W&B unreachable" in r.getMessage()]
    assert len(warnings) == 1 and f"wandb sync {run_dir / 'wandb'}" in warnings[0]
    tracker.log({"train/loss": 1.0}, iteration=1)
    tracker.summarize({"segm": {"AP": 0.5}}, None)
    tracker.finish("finished")
    (offline,) = (run_dir / "wandb").glob(f"offline-run-*-{rid}")
    assert (offline / f"run-{rid}.wandb").stat().st_size > 0


def test_wandb_failing_mid_run_leaves_the_local_record(tmp_path, caplog):
    tracker = Tracker(LoggerConf(enabled=False), run_dir=tmp_path, run_id="x", group="g", name="n", config={})

    class Broken:
        def log(self, values):
            raise ConnectionError("server went away")

        def finish(self, exit_code=0):
            raise ConnectionError("still away")

    tracker.run = Broken()
    tracker.log({"train/loss": 1.0}, iteration=1)
    tracker.log({"train/loss": 0.5}, iteration=2)  # no second warning: W&B is dropped after the first failure
    assert tracker.run is None
    assert sum("W&B failed (ConnectionError: server went away)" in r.getMessage() for r in caplog.records) == 1
