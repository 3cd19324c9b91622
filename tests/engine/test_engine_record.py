"""The one run-record type and its one liveness rule, shared by the engine, the launchers and the tables."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys

import pytest

from gol import record
from gol.record import Record

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def _running(**fields) -> Record:
    return Record(run_id="r", state="running", updated_at=(NOW - dt.timedelta(minutes=5)).isoformat(), **fields)


def test_only_running_records_can_be_alive() -> None:
    for state in ("finished", "failed"):
        assert not Record(run_id="r", state=state, updated_at=NOW.isoformat()).is_alive(now=NOW)


def test_a_process_on_this_host_is_probed() -> None:
    here = socket.gethostname()
    assert _running(owner={"host": here, "pid": os.getpid()}).is_alive(now=NOW)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = _running(owner={"host": here, "pid": int(gone.stdout)})
    assert not dead.is_alive(now=NOW)  # updated 5 min ago, but its process is gone


def test_a_process_elsewhere_is_alive_while_it_updates_its_record() -> None:
    elsewhere = _running(owner={"host": "node-17", "pid": 4242})
    assert elsewhere.is_alive(now=NOW)
    assert not elsewhere.is_alive(now=NOW + record.STALE_AFTER)
    assert not elsewhere.is_alive(now=NOW, stale_after=dt.timedelta(minutes=1))


def test_a_live_slurm_job_keeps_its_run_alive_and_a_requeue_of_mine_is_not_another_run() -> None:
    stale = Record(run_id="r", state="running", updated_at=(NOW - dt.timedelta(days=1)).isoformat(),
                   owner={"host": "node-17", "pid": 4242, "slurm_job_id": "41"})  # fmt: skip
    assert stale.is_alive(now=NOW, job_id="41_2", live_jobs={"41_2"})
    assert not stale.is_alive(now=NOW, job_id="41_2", live_jobs=set())
    me = {"host": "node-3", "pid": 7, "slurm_job_id": "41"}  # the same job, requeued onto another node
    assert not _running(owner=stale.owner).is_alive(now=NOW, me=me)


def test_records_of_any_schema_read_as_one_type(tmp_path) -> None:
    (tmp_path / record.RECORD).write_text(json.dumps({"run_id": "x", "state": "failed", "future_key": 1,
                                                      "choices": None, "overrides": ["a=1"]}))  # fmt: skip
    rec = record.read(tmp_path)
    assert rec == Record(run_id="x", state="failed", overrides=["a=1"])
    (tmp_path / record.RECORD).write_text('{"run_id": "x", "sta')  # torn while rewritten
    assert record.read(tmp_path) is None


def test_provenance_fields_round_trip_and_older_records_read_without_them(tmp_path) -> None:
    older = Record.from_json({"run_id": "x", "state": "finished", "git_commit": "3f2a9c1d+dirty"})
    assert (older.git_dirty, older.config_file, older.versions, older.device, older.annotations) == (
        None, None, {}, {}, {})  # fmt: skip
    val = {"path": "/data/lvis_v1_val.json", "size": 3, "mtime_ns": 5, "sha256": "ab" * 32}
    train = {**val, "path": "/data/lvis_v1_train.json"}
    versions = {"python": "3.11.7", "torch": "2.4.0", "torchvision": "0.19.0", "gol": "0.1.0", "hotcoco": "1.3.0"}
    rec = Record(run_id="y", git_commit="3f2a9c1d", git_dirty=False, config_file=record.CONFIG, versions=versions,
                 device={"type": "cuda", "count": 4, "name": "NVIDIA A100-SXM4-80GB"},
                 annotations={"train": train, "val": val})  # fmt: skip
    record.write_json(tmp_path / record.RECORD, rec.to_json())
    assert record.read(tmp_path) == rec


def test_claim_is_exclusive_among_processes_started_together(tmp_path):
    """Eight processes claim one folder at the same moment: exactly one gets it."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(8)
    results = ctx.Queue()
    procs = [ctx.Process(target=_claim_in_child, args=(tmp_path, barrier, results)) for _ in range(8)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sorted(outcomes).count("claimed") == 1 and outcomes.count("refused") == 7


def _claim_in_child(folder, barrier, results):
    import time

    barrier.wait()
    try:
        record.claim(folder, record.owner())
    except record.ClaimedError:
        results.put("refused")
        return
    results.put("claimed")
    time.sleep(2)  # hold it (alive) while the others try


def test_a_takeover_lock_left_by_a_killed_taker_does_not_block_the_next_launch(tmp_path):
    """A process killed while it took over a dead claim leaves both files behind; the command typed again at once
    claims the folder (a live taker's lock is waited for)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = record.owner()
    for name in (record.CLAIM, record.CLAIM + ".takeover"):
        (tmp_path / name).write_text(json.dumps({"owner": {**me, "pid": dead.pid}}))
    assert record.claim(tmp_path, me) == tmp_path / record.CLAIM
    assert sorted(p.name for p in tmp_path.iterdir()) == [record.CLAIM]
    (tmp_path / record.CLAIM).write_text(json.dumps({"owner": {**me, "pid": dead.pid}}))
    (tmp_path / (record.CLAIM + ".takeover")).write_text(json.dumps({"owner": {**me, "pid": os.getppid()}}))
    with pytest.raises(record.ClaimedError, match="launch again"):
        record.claim(tmp_path, me)


def test_a_dead_owners_claim_is_taken_over_and_a_live_ones_is_not(tmp_path):
    import subprocess
    import sys

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        me = record.owner()
        for pid, taken in ((live.pid, False), (dead.pid, True)):
            folder = tmp_path / str(pid)
            folder.mkdir()
            (folder / record.CLAIM).write_text(json.dumps({"owner": {**me, "pid": pid}}))
            if taken:
                assert record.claim(folder, me) == folder / record.CLAIM
                assert json.loads((folder / record.CLAIM).read_text())["owner"] == me
            else:
                with pytest.raises(record.ClaimedError, match=str(pid)):
                    record.claim(folder, me)
        # A requeued SLURM job (same job id, new process) takes its own claim back.
        folder = tmp_path / "requeued"
        folder.mkdir()
        (folder / record.CLAIM).write_text(json.dumps({"owner": {"host": "elsewhere", "pid": 1, "slurm_job_id": "77"}}))
        assert record.claim(folder, {**me, "slurm_job_id": "77"})
        record.release(folder / record.CLAIM, {**me, "slurm_job_id": "77"})
        assert not (folder / record.CLAIM).exists()
    finally:
        live.kill()
        live.wait()
