"""Benchmark: ``gol-eval`` against lvis-api and hotcoco alone, whole commands side by side on one results file.

    python -m gol.bench eval --size smoke|full [--repeat N] [--json PATH]

Generates an LVIS-format set (full: 2000 images, 1203 categories, ~620k detections with boxes and RLE masks,
~190 MB of JSON), writes the annotation and results files, then runs three commands on them, each from process
start to metrics written, bbox and segm: lvis-api (``LVIS`` + ``LVISResults`` + ``LVISEval`` per type), hotcoco
alone (``COCO`` + ``LVISResults`` once + ``LVISeval`` per type), and ``gol-eval --ann --results --out``. It reports
the median wall time of each (lvis-api runs once: minutes at full size), its peak resident memory, the ratios, and
each one's largest difference from lvis-api over the 13 metrics. ``gol-eval --protocol standard fixed pooled`` is
timed too (the price of AP-fixed and AP-pool).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gol.bench._report import add_json_option, write_json
from gol.data.synthetic_lvis import SyntheticSpec, make_lvis_set
from gol.evaluation.summary import IOU_TYPES, METRIC_KEYS

log = logging.getLogger(__name__)

SIZES = {
    "smoke": SyntheticSpec(num_images=30, num_categories=60, dets_per_image=(290, 330), image_size=(48, 160), seed=0),
    "full": SyntheticSpec(
        num_images=2000, num_categories=1203, dets_per_image=(290, 330), image_size=(240, 480), seed=0
    ),
}
COMMANDS = ("lvis-api", "hotcoco", "gol-eval", "gol-eval, 3 protocols")


def _command(name: str, ann: Path, results: Path, out: Path) -> list[str]:
    if name in ("lvis-api", "hotcoco"):
        which = "lvis" if name == "lvis-api" else "hotcoco"
        return [sys.executable, "-m", "gol.bench._eval_commands", which, str(ann), str(results), str(out)]
    gol_eval = str(Path(sys.executable).with_name("gol-eval"))  # the console script, as a user types it
    command = [gol_eval, "--ann", str(ann), "--results", str(results), "--out", str(out)]
    return command + (["--protocol", "standard", "fixed", "pooled"] if "protocols" in name else [])


def _run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MiB) of one command, from process start to exit, timed by a small
    process of its own (``_eval_commands measure``) so that its memory is not mixed with this benchmark's."""
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: a chatty command never blocks on it
        done = subprocess.run(
            [sys.executable, "-m", "gol.bench._eval_commands", "measure", *command],
            stdout=subprocess.PIPE, stderr=stderr, text=True, check=False,
        )  # fmt: skip
        report = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {"returncode": -1}
        if done.returncode != 0 or report["returncode"] != 0:
            stderr.seek(0)
            text = stderr.read().decode(errors="replace").strip()[-500:]
            raise RuntimeError(f"{' '.join(command[:3])} ... failed ({report['returncode']}): {text}")
    return float(report["seconds"]), report["max_rss_kib"] / 1024  # Linux reports KiB


def _max_difference(got: dict[str, Any], reference: dict[str, Any]) -> float:
    """Largest |difference| over the 13 metrics of both IoU types (null and -1 both mean undefined)."""
    worst = 0.0
    for iou_type in IOU_TYPES:
        for key in METRIC_KEYS:
            a, b = got[iou_type].get(key), reference[iou_type].get(key)
            a = None if a is None or a == -1 else a
            b = None if b is None or b == -1 else b
            if (a is None) != (b is None):
                return float("inf")
            if a is not None:
                worst = max(worst, abs(a - b))
    return worst


def run(size: str, repeat: int) -> dict[str, Any]:
    """Generate the ``size`` set, run the commands side by side; returns the report as a dict."""
    spec = SIZES[size]
    gt_dict, results = make_lvis_set(spec)
    with tempfile.TemporaryDirectory() as tmp:
        ann_file, results_file = Path(tmp) / "annotations.json", Path(tmp) / "results.json"
        ann_file.write_text(json.dumps(gt_dict), encoding="utf-8")
        results_file.write_text(json.dumps(results), encoding="utf-8")
        report: dict[str, Any] = {
            "size": size,
            "images": spec.num_images,
            "categories": spec.num_categories,
            "annotations": len(gt_dict["annotations"]),
            "detections": len(results),
            "results_mb": results_file.stat().st_size / 2**20,
            "repeat": repeat,
            "seconds": {},
            "peak_rss_mib": {},
            "max_metric_difference": {},
        }
        del gt_dict, results
        timings: dict[str, list[float]] = {name: [] for name in COMMANDS}
        memory: dict[str, float] = {}
        outputs = {name: Path(tmp) / f"metrics-{i}.json" for i, name in enumerate(COMMANDS)}
        for round_ in range(repeat):  # interleaved, so a slow moment of the machine hits every command alike
            for name in COMMANDS:
                if name == "lvis-api" and round_ > 0:
                    continue  # minutes at full size: once
                seconds, rss = _run(_command(name, ann_file, results_file, outputs[name]))
                timings[name].append(seconds)
                memory[name] = max(memory.get(name, 0.0), rss)
                log.info("%s: %.2f s, %.0f MiB", name, seconds, rss)
        reference = json.loads(outputs["lvis-api"].read_text())
        for name in COMMANDS:
            report["seconds"][name] = statistics.median(timings[name])
            report["peak_rss_mib"][name] = memory[name]
            report["max_metric_difference"][name] = _max_difference(json.loads(outputs[name].read_text()), reference)
    s = report["seconds"]
    report["ratio"] = {
        "lvis-api / gol-eval": s["lvis-api"] / s["gol-eval"],
        "gol-eval / hotcoco": s["gol-eval"] / s["hotcoco"],
        "peak rss gol-eval / lvis-api": report["peak_rss_mib"]["gol-eval"] / report["peak_rss_mib"]["lvis-api"],
    }
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [
        (
            f"set ({report['size']}): {report['images']} images, {report['categories']} categories, "
            f"{report['annotations']} annotations, {report['detections']} detections "
            f"({report['results_mb']:.0f} MB of results JSON); median of {report['repeat']} run(s), lvis-api once"
        ),
        f"{'command (bbox + segm)':<24}{'seconds':>9}{'peak MiB':>10}   max |metric - lvis-api|",
    ]
    for name in COMMANDS:
        lines.append(
            f"{name:<24}{report['seconds'][name]:>9.2f}{report['peak_rss_mib'][name]:>10.0f}   "
            f"{report['max_metric_difference'][name]:.3g}"
        )
    lines += [f"{k}: {v:.2f}x" for k, v in report["ratio"].items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gol.bench eval", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="smoke")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each fast command (lvis-api runs once)")
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = run(args.size, args.repeat)
    log.info("%s", format_report(report))
    write_json(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
