"""gol-tables / gol-figures run in-process on the fixture sweeps; W&B offline table logging; W&B API source."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from analysis.cli import figures_main, tables_main
from analysis.errors import WandbUnavailableError
from analysis.schema import make_frame
from analysis.sources import load_runs
from analysis.wandb_api import fetch_wandb_runs, has_wandb_login, row_from_wandb

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
GOLDEN = HERE / "golden"


@pytest.fixture
def no_wandb_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_analysis_cli_demo_table_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert tables_main(["--runs", str(FIXTURES / "demo"), "--experiment", "demo", "--format", "md"]) == 0
    assert capsys.readouterr().out == (GOLDEN / "demo.md").read_text(encoding="utf-8")


def test_analysis_cli_writes_every_format(tmp_path: Path) -> None:
    argv = [
        "--runs",
        str(FIXTURES / "activations"),
        "--experiment",
        "activations",
        "--format",
        "md",
        "tex",
        "csv",
        "--out",
        str(tmp_path),
    ]
    assert tables_main(argv) == 0
    for fmt in ("md", "tex", "csv"):
        assert (tmp_path / f"activations.{fmt}").read_text() == (GOLDEN / f"activations.{fmt}").read_text()


def test_analysis_cli_bad_input_one_line(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO)
    assert tables_main(["--runs", str(FIXTURES), "--experiment", "demo"]) == 1
    assert tables_main(["--runs", str(FIXTURES), "--experiment", "nonsense"]) == 1
    assert tables_main(["--runs", str(FIXTURES / "demo"), "--experiment", "losses"]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "runs of other experiments mixed into the 'demo' table: activations (11); pass only that sweep's folders, "
        "or --ignore-other-experiments to leave them out",
        "no table spec for experiment 'nonsense'; known experiments: activations, schedule_sampler, lvis_v05, "
        "losses, gol_ablation, sota, beyond, demo, none",
        "no runs of experiment 'losses' among 8 runs (found: demo (8))",
    ]
    assert all("\n" not in message for message in errors)
    assert capsys.readouterr().out == ""


def test_analysis_cli_figures(tmp_path: Path) -> None:
    assert figures_main(["--runs", str(FIXTURES / "demo"), "--experiment", "demo", "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        f"demo_{kind}.{ext}" for kind in ("ap_apr", "frequency_groups", "per_category") for ext in ("pdf", "png")
    ]


def test_analysis_cli_unreachable_wandb_project_keeps_local_runs(
    no_wandb_login: None, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    start = time.monotonic()
    argv = ["--runs", str(FIXTURES / "demo"), "wandb:someone/gol", "--experiment", "demo", "--format", "csv"]
    assert tables_main(argv) == 0
    assert time.monotonic() - start < 60  # no prompt, no hang
    assert capsys.readouterr().out == (GOLDEN / "demo.csv").read_text()
    assert any(
        r.getMessage().startswith("no W&B login (WANDB_API_KEY or netrc) to read someone/gol") for r in caplog.records
    )
    assert tables_main(["--runs", "wandb:someone/gol", "--experiment", "demo"]) == 1


def test_analysis_wandb_server_that_does_not_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(WandbUnavailableError, match="^W&B project someone/gol (cannot be read|did not answer)"):
        fetch_wandb_runs("someone/gol", group="demo", timeout=2.0)
    with pytest.raises(WandbUnavailableError, match="is not 'entity/project'"):
        fetch_wandb_runs("gol", group=None)


def test_analysis_wandb_login_detection(no_wandb_login: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not has_wandb_login()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    monkeypatch.setenv("NETRC", str(netrc))
    assert has_wandb_login()


def test_analysis_wandb_api_run_maps_to_schema() -> None:
    config = {
        "choices": {
            "activation": "gumbel",
            "loss": "droploss",
            "detector": "r50",
            "dataset": "lvis_v1",
            "sampler": "rfs",
            "schedule": "2x",
        },
        "detector": {"normed_mask": True},
        "seed": 3,
        "experiment": "sota",
    }
    summary = {"segm/AP": 0.277, "segm/APr": 0.214, "bbox/AP": 0.275, "segm/APc": None, "_step": 9}
    row = row_from_wandb(
        path="me/gol/abc", run_id="abc", name="seed=3", state="crashed", group="sota", config=config, summary=summary
    )
    frame = make_frame([row])
    run = frame.iloc[0]
    assert (run["source"], run["run_path"], run["state"]) == ("wandb", "me/gol/abc", "failed")
    assert run["experiment"] == "sota"
    assert (run["activation"], run["sampler"], run["normed_mask"], run["seed"]) == ("gumbel", "rfs", True, 3)
    assert run["segm/AP"] == pytest.approx(0.277) and run["bbox/AP"] == pytest.approx(0.275)
    assert frame["segm/APc"].isna().all() and frame["segm/APf"].isna().all()
    # Hydra's own choices, nested summaries, the {"value": ...} config form and the group as experiment.
    nested = row_from_wandb(
        path="me/gol/d",
        run_id="d",
        name=None,
        state="finished",
        group="demo",
        config={"hydra": {"value": {"runtime": {"choices": {"activation": "softmax"}}}}, "seed": {"value": 1}},
        summary={"segm": {"AP": 0.1, "APr": -1}, "bbox": {"AP": 0.2}},
    )
    nested_run = make_frame([nested]).iloc[0]
    assert (nested_run["activation"], nested_run["seed"], nested_run["experiment"]) == ("softmax", 1, "demo")
    assert nested_run["segm/AP"] == pytest.approx(0.1) and nested_run["bbox/AP"] == pytest.approx(0.2)
    assert make_frame([nested])["segm/APr"].isna().all()  # lvis-api's -1 = undefined
    # As gol's tracker logs a run: the resolved config, the experiment as group, the overrides as name.
    logged = row_from_wandb(
        path="me/gol/e",
        run_id="e",
        name="activation=gumbel,detector=maskrcnn_r50_fpn,seed=2",
        state="running",
        group="adhoc",
        config={"seed": 2, "detector": {"normed_mask": False}},
        summary={},
    )
    assert (logged["activation"], logged["detector"], logged["loss"]) == ("gumbel", "maskrcnn_r50_fpn", None)
    assert logged["experiment"] is None and logged["state"] == "running" and logged["normed_mask"] is False
    # The provenance block gol's tracker logs (the run record's fields); an older run has none.
    val = {"path": "/data/lvis_v1_val.json", "size": 3, "mtime_ns": 5, "sha256": "ab" * 32}
    provenance = {"git_commit": "3f2a9c1d", "git_dirty": True, "annotations": {"val": val}, "device": {}}
    traced = row_from_wandb(path="me/gol/f", run_id="f", name="seed=1", state="finished", group="demo",
                            config={"provenance": provenance}, summary={})  # fmt: skip
    assert (traced["git_commit"], traced["git_dirty"]) == ("3f2a9c1d", True)
    assert (traced["train_ann_sha256"], traced["val_ann_sha256"]) == (None, "ab" * 32)
    assert (logged["git_commit"], logged["git_dirty"], logged["val_ann_sha256"]) == (None, None, None)


def test_analysis_wandb_log_writes_an_offline_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    argv = [
        "--runs",
        str(FIXTURES / "demo"),
        "--experiment",
        "demo",
        "--format",
        "md",
        "--out",
        str(tmp_path / "tables"),
        "--wandb-log",
        "--wandb-dir",
        str(tmp_path / "tracking"),
    ]
    assert tables_main(argv) == 0
    (run_dir,) = (tmp_path / "tracking" / "wandb").glob("offline-run-*")
    assert len(list(run_dir.glob("run-*.wandb"))) == 1
    (table_file,) = run_dir.glob("files/media/table/tables/demo_*.table.json")
    logged = json.loads(table_file.read_text())
    assert logged["columns"][:3] == ["Activation", "source", "kind"]
    assert [row[0] for row in logged["data"]] == ["Sigmoid", "Softmax", "Gumbel"]


def test_analysis_sources_need_some_runs(no_wandb_login: None, tmp_path: Path) -> None:
    frame, messages = load_runs([FIXTURES / "demo", "wandb:me/gol"], experiment="demo")
    assert len(frame) == 8 and messages[-1].startswith("no W&B login")
    with pytest.raises(Exception, match="no record.json found under"):
        load_runs([tmp_path], experiment="demo")


def test_analysis_cli_protocol_columns_beside_the_paper_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs evaluated with eval.protocols=[standard,fixed,pooled] show AP-fixed and AP-pool with --protocols;
    runs without them show '-' there, with one message."""
    import shutil

    runs = tmp_path / "demo"
    shutil.copytree(FIXTURES / "demo", runs)
    with_fixed = sorted(runs.rglob("metrics.json"))
    for i, path in enumerate(with_fixed):
        metrics = json.loads(path.read_text())
        metrics["segm_fixed"] = {k: v + 0.01 for k, v in metrics["segm"].items()}
        metrics["segm_pooled"] = {"AP": 0.05 * (i + 1), "APr": 0.01, "APc": 0.02, "APf": 0.03}
        path.write_text(json.dumps(metrics))
    argv = ["--runs", str(runs), "--experiment", "demo", "--format", "csv"]
    assert tables_main([*argv, "--protocols", "fixed", "pooled"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    names = [c for c in header.split(",") if c.startswith("AP") and not c.endswith(("_std", "_n"))]
    assert names == [
        "AP",
        "APr",
        "APc",
        "APf",
        "APb",
        *(f"{m}-{p}" for p in ("fixed", "pooled") for m in ("AP", "APr", "APc", "APf")),
    ]
    assert any(",5.00," in row or ",5.0," in row for row in rows)  # a pooled AP of 0.05 shown in percent
    assert tables_main(argv) == 0  # without the option: the paper's columns only
    assert "AP-fixed" not in capsys.readouterr().out
    first = json.loads(with_fixed[0].read_text())
    del first["segm_fixed"]
    with_fixed[0].write_text(json.dumps(first))
    assert tables_main([*argv[:-1], "md", "--protocols", "fixed"]) == 0
    assert "segm_fixed/AP (AP-fixed) is missing in 1 of" in capsys.readouterr().out  # the table's notes


def test_analysis_cli_errors_figure_from_runs_evaluated_with_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    runs = tmp_path / "demo"
    shutil.copytree(FIXTURES / "demo", runs)
    with caplog.at_level(logging.INFO):
        assert (
            figures_main(["--runs", str(runs), "--experiment", "demo", "--out", str(tmp_path / "a"), "--format", "png"])
            == 0
        )
    assert not (tmp_path / "a" / "demo_errors.png").exists() and "no errors figure" in caplog.text
    for i, path in enumerate(sorted(runs.rglob("metrics.json"))):
        metrics = json.loads(path.read_text())
        for group in ("all", "r", "c", "f"):
            metrics[f"segm_errors_{group}"] = {"AP50": 0.3, "Cls": 0.01 * i, "Loc": 0.02, "Both": 0.005, "Dupe": 0.03,
                                               "Bkg": 0.1, "Miss": 0.04}  # fmt: skip
        path.write_text(json.dumps(metrics))
    assert (
        figures_main(["--runs", str(runs), "--experiment", "demo", "--out", str(tmp_path / "b"), "--format", "png"])
        == 0
    )
    assert (tmp_path / "b" / "demo_errors.png").stat().st_size > 10_000
