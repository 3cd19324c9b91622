"""Benchmarks run end to end at smoke size (no timed assertions: machines are noisy), and their dispatcher."""

from __future__ import annotations

import json

import pytest

from gol.bench import __main__ as dispatcher
from gol.bench import data, inference, postprocess, train_step
from gol.bench._data_probe import PARTS
from gol.data.lvis_scale import write_lvis_scale


def test_dispatcher_lists_the_benchmarks_and_refuses_unknown_names(capsys):
    assert dispatcher.main([]) == 0
    listing = capsys.readouterr().out
    for name in ("train_step", "inference", "postprocess", "loss", "eval", "rfs", "distributed_eval", "data"):
        assert f"  {name} " in listing
    assert dispatcher.main(["no_such_bench"]) == 2
    assert "available: " in capsys.readouterr().err


def test_train_step_compares_the_engine_step_with_a_bare_torchvision_step(tmp_path):
    report = train_step.run(size="smoke", root=tmp_path)
    # Same architecture, weights and RNG draws: the two detectors compute the same losses before any step.
    first = report["first_step_losses"]
    assert (
        set(first["gol"])
        == set(first["bare"])
        == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    )
    for name, value in first["bare"].items():
        assert first["gol"][name] == pytest.approx(value, rel=1e-6, abs=1e-7), name
    assert report["nonfinite_steps"] == {"gol": 0, "bare": 0}
    assert report["median_ms"]["gol"] > 0 and report["median_ms"]["bare"] > 0
    assert report["ratio"] == pytest.approx(report["median_ms"]["gol"] / report["median_ms"]["bare"])


def test_train_step_cli_writes_its_report(tmp_path, capsys):
    out = tmp_path / "report.json"
    argv = ["train_step", "--size", "smoke", "--root", str(tmp_path), "--profile", "5", "--json", str(out)]
    assert dispatcher.main(argv) == 0
    printed = capsys.readouterr().out
    assert "ratio gol / bare" in printed and "operators by self time" in printed
    report = json.loads(out.read_text())
    assert report["model"] == "tiny"
    # The profile names Loop.step's phases and ranks real operators.
    profiled = report["profile"]
    assert set(profiled["phases_ms"]) == {"transfer", "forward", "backward", "optimizer"}
    assert all(phase["cpu_ms"] >= 0 for phase in profiled["phases_ms"].values())
    assert profiled["phases_ms"]["backward"]["cpu_ms"] > 0 and profiled["phases_ms"]["forward"]["cpu_ms"] > 0
    ops = profiled["top_ops"]
    assert len(ops) == 5 and all(op["calls"] >= 1 for op in ops)
    assert [op["self_ms"] for op in ops] == sorted((op["self_ms"] for op in ops), reverse=True)


def test_inference_benchmark_agrees_with_torchvision(tmp_path, capsys):
    out = tmp_path / "inference.json"
    assert inference.main(["--size", "smoke", "--repeats", "1", "--json", str(out)]) == 0
    assert "torchvision" in capsys.readouterr().out
    steps = json.loads(out.read_text())["cases"]["demo"]["steps"]
    assert set(steps) == {"mask", "paste"}
    assert all(step["max_abs_difference"] < 1e-5 for step in steps.values())
    assert all(step["speedup"] > 0 for step in steps.values())


def test_postprocess_benchmark_times_the_three_ways_and_checks_their_rles(tmp_path, capsys):
    out = tmp_path / "postprocess.json"
    assert dispatcher.main(["postprocess", "--size", "smoke", "--repeats", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "matmul/box" in printed and "image/box" in printed and "held per detection" in printed
    case = json.loads(out.read_text())["cases"]["smoke"]
    assert set(case["seconds"]) == set(postprocess.WAYS) and all(s > 0 for s in case["seconds"].values())
    assert case["ratio_to_box"]["image"] == pytest.approx(case["seconds"]["image"] / case["seconds"]["box"])
    assert case["box_equals_image"]
    held = case["held_per_detection"]
    assert held["masks"] >= postprocess.MEMORY_MASKS
    assert held["counts_bytes"] < held["rles_bytes"] < held["dicts_bytes"]


def test_rfs_benchmark_at_smoke_size_matches_the_loop(tmp_path):
    out = tmp_path / "rfs.json"
    assert dispatcher.main(["rfs", "--size", "smoke", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["identical"] and report["max_abs_difference"] == 0.0
    assert (report["images"], report["categories"]) == (2000, 1203)
    assert report["epoch_indices"] >= report["images"]  # every r(I) >= 1


@pytest.mark.timeout(300)
def test_distributed_eval_benchmark_at_smoke_size_evaluates_as_one_process(tmp_path, capsys):
    out = tmp_path / "distributed_eval.json"
    argv = ["distributed_eval", "--size", "smoke", "--workers", "0", "--root", str(tmp_path), "--json", str(out)]
    assert dispatcher.main(argv) == 0
    assert "ratio 2 / 1 processes" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["identical"] and report["images"] == 16 and report["detections"] > 0
    one, two = report["sides"]["1 process"], report["sides"]["2 processes"]
    assert report["ratio"] == pytest.approx(two["total_s"] / one["total_s"])
    assert one["from_others_pickled_mib"] == 0 and 0 < two["from_others_pickled_mib"] < two["pickled_mib"]
    assert all(
        side["inference_s"] > 0 and side["inference_cpu_s"] > 0 and side["peak_rss_mib"] > 0 for side in (one, two)
    )


def test_data_benchmark_at_tiny_scale_measures_startup_memory_and_workers(tmp_path, capsys):
    files = write_lvis_scale(tmp_path / "set", scale=0.002, seed=0)
    out = tmp_path / "data.json"
    argv = ["data", "--root", str(files.train_ann.parent), "--workers", "2", "--images", "20", "--gpus", "1", "4"]
    assert dispatcher.main([*argv, "--json", str(out)]) == 0
    assert "projected node total" in capsys.readouterr().out
    report = json.loads(out.read_text())
    startup = report["startup"]
    assert startup["train_images"] > 0 and startup["seconds"] > 0
    # Each named step of the build is timed, or reported as left out when the data layer no longer has it.
    assert set(startup["parts_seconds"]) | set(startup["parts_left_out"]) == {part for part, _, _ in PARTS}
    assert sum(startup["parts_seconds"].values()) <= startup["seconds"]
    after = startup["memory_after_build_mib"]
    assert after["rss"] >= after["pss"] >= after["uss"] > 0 and startup["max_rss_mib"] >= after["rss"] * 0.9
    (loader,) = report["loaders"]
    assert loader["workers_found"] == 2 and loader["images"] >= 20
    assert loader["samples"][0]["images"] == 0 and len(loader["samples"]) == 21
    assert all(len(s["mib"]) == 2 and all(m["uss"] > 0 for m in s["mib"]) for s in loader["samples"])
    # The projection is the documented sum: G processes plus G x W workers.
    rows = report["projection"]
    assert [(r["gpus"], r["workers"]) for r in rows] == [(1, 2), (4, 2)]
    for r in rows:
        assert r["node_mib"] == pytest.approx(r["gpus"] * after["rss"] + r["gpus"] * 2 * r["worker_epoch_mib"])
        assert r["worker_epoch_mib"] >= loader["summary"]["uss_start"]


def test_data_benchmark_refuses_a_folder_without_a_set(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        data.main(["--root", str(tmp_path)])
    assert exited.value.code == 2
    assert "gol-data lvis-scale --out" in capsys.readouterr().err
