"""One cell end to end through `gol-train` typed in a fresh folder: the run record, W&B offline files, refusal, resume."""

import hashlib
import json
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gol import checkpoint, record
from gol.tracking import run_id_for
from tests_support import run_train, user_env

METRIC_KEYS = {
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "APr",
    "APc",
    "APf",
    "AR@300",
    "ARs@300",
    "ARm@300",
    "ARl@300",
}


def smoke(*extra):
    # scale=smoke fixes the dataset to the embedded one; a cell that picks another dataset takes the smoke schedule.
    return ["schedule=smoke" if any(e.startswith("dataset=") for e in extra) else "scale=smoke", *extra]


def train_in(folder, data_root, *args):
    """``gol-train ARGS`` typed in ``folder`` (made if missing); the generated data shared through GOL_DATA."""
    folder.mkdir(parents=True, exist_ok=True)
    return run_train(list(args), cwd=folder, env={"GOL_DATA": str(data_root)})


def the_run(folder):
    """The one run folder a single ``gol-train`` typed in ``folder`` made (outputs/runs/<date>_<time>_<id>)."""
    (run_dir,) = (folder / "outputs" / "runs").iterdir()
    return run_dir


def test_smoke_run_writes_the_local_record_and_offline_wandb(tmp_path, data_root):
    done = train_in(tmp_path, data_root, *smoke("activation=gumbel"))
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = the_run(tmp_path)
    rec = json.loads((run_dir / "record.json").read_text())
    assert rec["state"] == "finished" and rec["error"] is None
    assert rec["choices"]["activation"] == "gumbel" and rec["choices"]["detector"] == "tiny"
    assert rec["iteration"] == rec["max_iter"] == 4 and rec["run_id"] == run_id_for(run_dir)
    assert rec["git_commit"] and isinstance(rec["git_dirty"], bool)  # run from this checkout
    assert_provenance(run_dir, rec)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) == {"bbox", "segm", "eval"}
    assert metrics.pop("eval") == {"segm_area": "mask"}  # eval.segm_area's default
    for values in metrics.values():
        assert set(values) == METRIC_KEYS
        assert all(v is None or 0.0 <= v <= 1.0 for v in values.values())
    per_category = json.loads((run_dir / "per_category.json").read_text())["categories"]
    assert {row["frequency"] for row in per_category} == {"r", "c", "f"}
    assert (run_dir / "config.yaml").read_text().count("_target_") >= 5
    # Every log period (and the last iteration) leaves a line with the losses, the lr and where the time went.
    last = [line for line in (run_dir / "train.log").read_text().splitlines() if "iteration 4/4: loss " in line]
    assert len(last) == 1 and "loss_classifier " in last[0] and "waiting for data " in last[0], last
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    wandb_runs = list((run_dir / "wandb").glob(f"offline-run-*-{rec['run_id']}"))
    assert len(wandb_runs) == 1 and rec["wandb"]["mode"] == "offline"
    assert (wandb_runs[0] / f"run-{rec['run_id']}.wandb").stat().st_size > 0
    # W&B's config carries the record's provenance (as JSON in the offline file), so tables built from W&B can
    # check it too.
    logged = (wandb_runs[0] / f"run-{rec['run_id']}.wandb").read_bytes().decode("utf-8", "replace")
    start = logged.index("{", logged.index("provenance"))
    assert json.JSONDecoder().raw_decode(logged, start)[0] == {k: rec[k] for k in record.PROVENANCE}


def assert_provenance(run_dir, rec):
    """The record names the resolved config, the versions in use, the device and the annotations read."""
    assert rec["config_file"] == "config.yaml" and (run_dir / rec["config_file"]).is_file()
    versions = rec["versions"]
    assert set(versions) == {"python", "torch", "torchvision", "gol", "hotcoco"}  # eval.engine's default
    assert versions["torch"] == torch.__version__ and versions["python"] == platform.python_version()
    assert all(versions.values()), versions
    assert rec["device"]["type"] in ("cpu", "cuda") and rec["device"]["count"] == rec["world_size"] == 1
    assert rec["device"]["name"]
    for split in ("train", "val"):
        entry = rec["annotations"][split]
        path = Path(entry["path"])
        assert path.name == f"lvis_v1_{split}.json" and entry["size"] == path.stat().st_size
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert json.loads(path.with_name(path.name + ".fingerprint.json").read_text()) == entry  # cached beside


def test_a_finished_folder_is_refused_and_left_untouched(tmp_path, data_root):
    assert train_in(tmp_path, data_root, *smoke("logger=none")).returncode == 0
    run_dir = the_run(tmp_path)
    before = {p.name: p.read_bytes() for p in run_dir.glob("*.json")}
    again = train_in(tmp_path, data_root, *smoke("logger=none", f"hydra.run.dir={run_dir}"))
    assert again.returncode != 0
    assert "already holds a finished run" in again.stderr
    assert {p.name: p.read_bytes() for p in run_dir.glob("*.json")} == before


@pytest.mark.parametrize(
    "args,message",
    [
        (["activation=softmax", "loss=eql"], "valid pairs"),
        (["dataset=lvis_v1"], "annotation file not found"),
        (["detector.weights=/nonexistent/tiny.pt"], "/nonexistent/tiny.pt"),
        (["schedule.max_itr=3"], "max_itr"),
        (["schedule.lr=-1"], "schedule.lr must be positive, got -1.0"),
        (["device=cuda:7"], "device='cuda:7' but "),
        (["loss=focal"], "unknown loss option 'focal'; choose one of: ce, droploss, eql, eqlv2, federated, seesaw"),
        (["activaton=gumbel"], "unknown key 'activaton' (did you mean 'activation'?)"),
        (["experiment=losess"], "unknown experiment option 'losess' (did you mean 'losses'?)"),
    ],
)
def test_bad_input_gets_a_clear_error_and_no_finished_record(tmp_path, data_root, args, message):
    done = train_in(tmp_path, data_root, *smoke("logger=none", *args))
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    records = list(tmp_path.glob("outputs/runs/*/record.json"))
    assert all(json.loads(r.read_text())["state"] == "failed" for r in records)


def test_a_damaged_annotation_file_is_refused_in_one_line_naming_the_entry(tmp_path, data_root):
    lvis_root, coco_root = tmp_path / "lvis", tmp_path / "coco"
    (coco_root / "train2017").mkdir(parents=True)
    lvis_root.mkdir()
    image = {"id": 1, "height": 8, "width": 8, "coco_url": "http://images.cocodataset.org/train2017/1.jpg"}
    ann = {"id": 17, "image_id": 1, "category_id": 99, "bbox": [1, 1, 3, 3], "segmentation": [[1, 1, 4, 1, 4, 4]]}
    category = {"id": 1, "name": "a", "frequency": "r", "image_count": 1}
    train = lvis_root / "lvis_v1_train.json"
    train.write_text(json.dumps({"images": [image], "annotations": [ann], "categories": [category]}))
    done = train_in(tmp_path, data_root, *smoke("dataset=lvis_v1", "detector=tiny", "logger=none",
                                                f"paths.lvis_root={lvis_root}", f"paths.coco_root={coco_root}"))  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if "DataFormatError" in line]
    assert len(errors) == 1, done.stderr[-2000:]
    assert errors[0].endswith(
        f"DataFormatError: {train}: annotation 17 has category_id 99, which is not among the file's categories "
        "(1 annotation(s) like it); fix or remove that entry"
    ), errors[0]


def test_a_file_where_the_outputs_go_is_refused_before_anything_runs(tmp_path, data_root):
    (tmp_path / "outputs").write_text("not a folder")
    for args in (smoke("logger=none"), ["-m", *smoke("activation=sigmoid,gumbel", "logger=none")]):
        done = train_in(tmp_path, data_root, *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        errors = [line for line in done.stderr.splitlines() if "cannot be made" in line]
        assert len(errors) == 1 and errors[0].endswith(
            f"output folder {tmp_path / 'outputs'} cannot be made: {tmp_path / 'outputs'} is a file; move it away "
            "or set GOL_OUTPUT (or paths.output_root) to another folder; nothing run"
        ), done.stderr[-2000:]
    assert (tmp_path / "outputs").read_text() == "not a folder"


def _weights(run_dir):
    return checkpoint.load(run_dir / "checkpoints" / "last.pt")["model"]


def test_a_killed_run_resumes_to_the_same_weights(tmp_path, data_root):
    """CPU, fixed seed: kill a run after a checkpoint, restart it in its folder, compare with an uninterrupted run."""
    args = smoke(
        "logger=none", "schedule.max_iter=8", "schedule.steps=[6]", "schedule.checkpoint_period=2", "num_workers=0"
    )
    assert train_in(tmp_path / "a", data_root, *args).returncode == 0
    straight = the_run(tmp_path / "a")

    folder = tmp_path / "b"
    folder.mkdir()
    gol_train = Path(sys.executable).with_name("gol-train")
    proc = subprocess.Popen([str(gol_train), *args], cwd=folder, env=user_env(folder, GOL_DATA=str(data_root)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(folder.glob("outputs/runs/*/checkpoints/*.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted = the_run(folder)
    state = json.loads((interrupted / "record.json").read_text())
    assert state["state"] == "running" and state["iteration"] < 8, "the run ended before it could be interrupted"

    # The user resumes by naming the run's folder.
    resumed = train_in(folder, data_root, *args, f"hydra.run.dir={interrupted}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in (interrupted / "train.log").read_text()
    a, b = _weights(straight), _weights(interrupted)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    assert json.loads((straight / "metrics.json").read_text()) == json.loads((interrupted / "metrics.json").read_text())


def test_gol_eval_on_a_run_reproduces_its_metrics(tmp_path, data_root):
    assert train_in(tmp_path, data_root, *smoke("logger=none")).returncode == 0
    run_dir = the_run(tmp_path)
    out = tmp_path / "again.json"
    gol_eval = Path(sys.executable).with_name("gol-eval")  # the console script, as typed
    done = subprocess.run(
        [str(gol_eval), "--run", str(run_dir.relative_to(tmp_path)), "--out", "again.json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(out.read_text()) == json.loads((run_dir / "metrics.json").read_text())
    # AP-fixed and AP-pool of the finished run, without retraining; the run's own metrics.json is left as recorded.
    recorded = (run_dir / "metrics.json").read_text()
    more = subprocess.run(
        [str(gol_eval), "--run", str(run_dir), "--out", "fixed.json", "--protocol", "standard", "fixed", "pooled",
         "--dets-per-category", "100", "--infer-topk", "100"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert more.returncode == 0, more.stderr[-3000:]
    metrics = json.loads((tmp_path / "fixed.json").read_text())
    assert {"segm_fixed", "bbox_fixed", "segm_pooled", "bbox_pooled"} <= set(metrics)
    assert metrics["eval"]["infer_topk"] == 100 and metrics["eval"]["protocols"] == ["standard", "fixed", "pooled"]
    assert (run_dir / "metrics.json").read_text() == recorded
    bad = subprocess.run(
        [str(gol_eval), "--run", str(run_dir), "--out", "bad.json", "--protocol", "fixed"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2 and "must list standard" in bad.stderr and "Traceback" not in bad.stderr
    assert len([line for line in bad.stderr.splitlines() if "error" in line]) == 1
