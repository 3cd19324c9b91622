"""The columnar annotation table and its node cache: lvis-api's view of the file, rebuilt when stale or damaged,
built once by concurrent processes, in memory when the cache cannot be written."""

from __future__ import annotations

import fcntl
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from gol.data.annotation_table import AnnotationTable
from gol.data.synthetic_lvis import SyntheticSpec, make_lvis_set
from gol.data.table_cache import SUBDIR, cache_folder, cached_table, load_folder, parse_table
from gol.data.validation import DataFormatError
from gol.lvis_compat import LVIS

OPTIONS = {"version": "v0.5", "split_folder": "val2017", "federated": True}  # file_name records, as v0.5


@pytest.fixture(scope="module")
def annotation_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Polygons of one and two parts, compressed and uncompressed RLEs, negative and not-exhaustive ids."""
    data, _ = make_lvis_set(SyntheticSpec(num_images=40, num_categories=15, seed=3))
    path = tmp_path_factory.mktemp("ann") / "lvis_val.json"
    path.write_text(json.dumps(data))
    return path


def _same_table(a: AnnotationTable, b: AnnotationTable) -> None:
    for name, array in a.arrays().items():
        np.testing.assert_array_equal(array, getattr(b, name), err_msg=name)


def test_cached_table_reads_the_file_as_lvis_api(annotation_file: Path, tmp_path: Path) -> None:
    table, categories = cached_table(annotation_file, cache_dir=tmp_path, **OPTIONS)
    ref = LVIS(str(annotation_file))
    assert isinstance(table.coords, np.memmap) and not table.coords.flags.writeable  # mapped read-only
    assert categories == ref.dataset["categories"]
    assert table.image_ids.tolist() == [im["id"] for im in ref.dataset["images"]]
    kinds = set()
    for index, image_id in enumerate(table.image_ids.tolist()):
        record = ref.imgs[image_id]
        assert table.image_sizes[index].tolist() == [record["height"], record["width"]]
        assert table.image_path(index) == f"val2017/{record['file_name']}"
        assert table.neg_category_ids(index) == record["neg_category_ids"]
        assert table.not_exhaustive_category_ids(index) == record["not_exhaustive_category_ids"]
        ours = table.annotations(index)
        theirs = ref.img_ann_map[image_id]
        assert [a["id"] for a in ours] == [a["id"] for a in theirs]  # lvis-api's order within the image
        for mine, ann in zip(ours, theirs):
            assert mine["category_id"] == ann["category_id"] and mine["bbox"] == ann["bbox"]
            assert mine["area"] == ann["area"]
            seg = ann["segmentation"]
            kinds.add("polygons" if isinstance(seg, list) else type(seg["counts"]).__name__)
            if isinstance(seg, list):
                assert mine["segmentation"] == seg
            assert np.array_equal(mask_utils.decode(ref.ann_to_rle({**ann, "segmentation": mine["segmentation"]})),
                                  ref.ann_to_mask(ann))  # fmt: skip
    assert kinds == {"polygons", "list", "str"}  # every segmentation form was exercised
    in_memory, _ = parse_table(annotation_file, **OPTIONS)
    _same_table(table, in_memory)


def test_a_second_use_maps_the_built_folder_without_parsing(annotation_file: Path, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    cached_table(annotation_file, cache_dir=tmp_path, **OPTIONS)
    caplog.set_level(logging.INFO, logger="gol.data.table_cache")
    caplog.clear()
    again, _ = cached_table(annotation_file, cache_dir=tmp_path, **OPTIONS)
    assert "building" not in caplog.text
    assert len(list((tmp_path / SUBDIR).iterdir())) == 2  # the folder and its lock file
    assert isinstance(again.boxes, np.memmap)


def test_an_edited_file_gets_a_new_table(annotation_file: Path, tmp_path: Path) -> None:
    path = tmp_path / annotation_file.name
    data = json.loads(annotation_file.read_text())
    path.write_text(json.dumps(data))
    first, _ = cached_table(path, cache_dir=tmp_path / "cache", **OPTIONS)
    data["annotations"][0]["bbox"][2] += 1.0
    path.write_text(json.dumps(data))
    second, _ = cached_table(path, cache_dir=tmp_path / "cache", **OPTIONS)
    assert not np.array_equal(first.boxes, second.boxes)  # the stale table was not read
    assert len([p for p in (tmp_path / "cache" / SUBDIR).iterdir() if p.is_dir()]) == 2


@pytest.mark.parametrize("damage", ["truncated column", "torn meta", "no meta"])
def test_a_damaged_folder_is_built_again(annotation_file: Path, tmp_path: Path, damage: str,
                                         caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    reference, _ = parse_table(annotation_file, **OPTIONS)
    cached_table(annotation_file, cache_dir=tmp_path, **OPTIONS)
    folder = cache_folder(annotation_file, cache_dir=tmp_path, **OPTIONS)
    if damage == "truncated column":
        column = folder / "coords.npy"
        column.write_bytes(column.read_bytes()[:-100])
    elif damage == "torn meta":
        (folder / "meta.json").write_text('{"layout": 1, "colu')
    else:
        (folder / "meta.json").unlink()
    assert load_folder(folder) is None and folder.exists()  # without the build lock, nothing is removed
    table, _ = cached_table(annotation_file, cache_dir=tmp_path, **OPTIONS)
    assert "built again" in caplog.text
    _same_table(table, reference)


def test_concurrent_builders_build_once_and_agree(annotation_file: Path, tmp_path: Path) -> None:
    script = (
        "import logging, sys; from pathlib import Path; import numpy as np\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "from gol.data.table_cache import cached_table\n"
        f"t, _ = cached_table(Path({str(annotation_file)!r}), cache_dir=Path({str(tmp_path)!r}), version='v0.5', "
        "split_folder='val2017', federated=True)\n"
        "print(float(np.asarray(t.coords).sum()), t.num_annotations)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]  # fmt: skip
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    assert sum(err.count("building the annotation cache") for _, err in results) == 1
    assert len({out for out, _ in results}) == 1


def test_a_cache_that_cannot_be_written_warns_once_and_parses_in_memory(
    annotation_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    table, _ = cached_table(annotation_file, cache_dir=blocker, **OPTIONS)
    reference, _ = parse_table(annotation_file, **OPTIONS)
    _same_table(table, reference)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "cannot write" in r.getMessage()]
    assert len(warnings) == 1 and "parsed in memory" in warnings[0].getMessage()


def test_a_refused_file_writes_nothing_and_says_why_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    data, _ = make_lvis_set(SyntheticSpec(num_images=3, num_categories=4, seed=1))
    data["annotations"][0]["category_id"] = 999
    path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError) as error:
        cached_table(path, cache_dir=tmp_path / "cache", **OPTIONS)
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "category_id 999" in message
    assert not [p for p in (tmp_path / "cache" / SUBDIR).iterdir() if p.is_dir()]


def test_a_coordinate_that_is_not_a_number_is_refused_naming_the_annotation(tmp_path: Path) -> None:
    path = tmp_path / "coord.json"
    data, _ = make_lvis_set(SyntheticSpec(num_images=3, num_categories=4, seed=1))
    ann = next(a for a in data["annotations"] if isinstance(a["segmentation"], list))
    ann["segmentation"][0][3] = "abc"
    path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match=f"annotation {ann['id']} has a polygon coordinate 'abc'"):
        cached_table(path, cache_dir=tmp_path / "cache", **OPTIONS)


def test_the_checks_warnings_are_logged_at_every_use(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "degenerate.json"
    data, _ = make_lvis_set(SyntheticSpec(num_images=4, num_categories=4, seed=2))
    ann = next(a for a in data["annotations"] if isinstance(a["segmentation"], list))
    ann["segmentation"].append([1.0, 2.0, 3.0, 4.0])  # a 2-point polygon: dropped in training, with a warning
    path.write_text(json.dumps(data))
    for _ in range(2):  # built (by the child), then mapped
        caplog.clear()
        cached_table(path, cache_dir=tmp_path / "cache", **OPTIONS)
        assert [r.getMessage() for r in caplog.records if "fewer than 3 points" in r.getMessage()], caplog.text


def test_staging_left_by_a_killed_builder_is_removed(annotation_file: Path, tmp_path: Path) -> None:
    folder = cache_folder(annotation_file, cache_dir=tmp_path, **OPTIONS)
    stale = folder.with_name(folder.name + ".tmp-otherhost-123-abcd")
    stale.mkdir(parents=True)
    (stale / "coords.npy").write_bytes(b"half")
    cached_table(annotation_file, cache_dir=tmp_path, **OPTIONS)
    assert not stale.exists() and load_folder(folder) is not None


def test_processes_waiting_for_a_refused_file_fail_with_its_refusal_at_once(tmp_path: Path) -> None:
    """The holder of the build lock had the file refused: a process that waited for it fails with the same line,
    without parsing the file again."""
    path = tmp_path / "bad.json"
    data, _ = make_lvis_set(SyntheticSpec(num_images=3, num_categories=4, seed=1))
    path.write_text(json.dumps(data))
    folder = cache_folder(path, cache_dir=tmp_path / "cache", **OPTIONS)
    folder.parent.mkdir(parents=True)
    script = (
        "import logging; from pathlib import Path\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "from gol.data.table_cache import cached_table\n"
        f"cached_table(Path({str(path)!r}), cache_dir=Path({str(tmp_path / 'cache')!r}), version='v0.5', "
        "split_folder='val2017', federated=True)\n"
    )
    with (folder.parent / f"{folder.name}.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # this test is the builder; the file is refused while the other waits
        waiting = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and waiting.poll() is None:
            time.sleep(0.2)
            if _blocked_on_flock(waiting.pid):
                break
        lock.write("refused\tbad.json: annotation 1 is wrong; fix or remove that entry\n")
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_UN)
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode != 0 and "building" not in err
    assert err.strip().splitlines()[-1].endswith("bad.json: annotation 1 is wrong; fix or remove that entry"), err


def _blocked_on_flock(pid: int) -> bool:
    """Whether process ``pid`` waits for a flock (a ``->`` line of /proc/locks)."""
    return any("->" in line and f" {pid} " in line for line in Path("/proc/locks").read_text().splitlines())
