"""LVIS-format ground truth, read and checked once, held as arrays for evaluation.

Shape shorthand: I = images (sorted by id, as lvis-api's ``params.img_ids``), K = categories (sorted by id, the
order of lvis-api's precision array), G = annotations lvis-api evaluates (those with 0 < area < inf, in file
order). Image and category *indices* below index those sorted arrays. The engines read the file themselves; this is
what gol checks detections against and what it needs to prepare them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from gol.evaluation.errors import EvaluationInputError

FREQUENCIES = ("r", "c", "f")  # lvis-api's Params.img_count_lbl: rare, common, frequent


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector inside the block: building LVIS-sized JSON (hundreds of thousands of dicts,
    none in a cycle) otherwise triggers collections that walk the growing heap over and over (on the full set of
    ``python -m gol.bench eval``, parsing the results takes 2.9 s with it and 1.0 s without)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_json(path: Path, what: str) -> Any:
    """Parse a JSON file (orjson: several times faster than the standard library on LVIS-sized files), with
    one-line errors for a missing file or invalid JSON (NaN and Infinity are not JSON, so they are refused)."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist; check the path")
    data = path.read_bytes()
    try:
        with gc_paused():
            return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        if b"NaN" in data or b"Infinity" in data:  # what json.dump writes for a non-finite float
            raise EvaluationInputError(
                f"{what} file {path} holds NaN or Infinity, which JSON does not allow: scores and boxes must be "
                "finite numbers"
            ) from None
        raise EvaluationInputError(f"{what} file {path} is not valid JSON ({e.msg} at line {e.lineno})") from None


@dataclass(frozen=True)
class Category:
    """One dataset category as reported in per_category.json."""

    id: int
    name: str
    frequency: str
    image_count: int | None


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """An LVIS annotation file as arrays; build with :meth:`load` and reuse across evaluations.

    Attributes:
        path: the annotation file (the reference engine hands it to lvis-api).
        image_ids, heights, widths: (I,) int64, sorted by image id.
        categories: (K,) sorted by id; category_ids: (K,) int64.
        ann_ignore: (G,) bool (the optional ``ignore`` field lvis-api honours); ann_crowd: (G,) bool (``iscrowd``,
            which LVIS files lack and lvis-api ignores); ann_id: (G,) int64.
        ann_records: (G,) the annotation dicts, for their ``bbox`` and ``segmentation``.
        all_annotations_evaluated: whether every annotation of the file has ``0 < area < inf`` (G is all of them).
    """

    path: Path
    image_ids: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    categories: tuple[Category, ...]
    category_ids: np.ndarray
    ann_ignore: np.ndarray
    ann_crowd: np.ndarray
    ann_id: np.ndarray
    ann_records: tuple[dict[str, Any], ...]
    all_annotations_evaluated: bool = True
    _boxes: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> GroundTruth:
        """Read and check an LVIS-format annotation file (FileNotFoundError / EvaluationInputError if unusable)."""
        path = Path(path)
        data = load_json(path, "annotation")
        where = f"annotation file {path}"
        if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
            raise EvaluationInputError(
                f"{where} is not LVIS format: expected an object with 'images', 'annotations' and 'categories'"
            )
        images = _records(
            data["images"], ("id", "height", "width", "neg_category_ids", "not_exhaustive_category_ids"), where, "image"
        )
        cats = _records(data["categories"], ("id", "frequency"), where, "category")
        anns = _records(data["annotations"], ("id", "image_id", "category_id", "area"), where, "annotation")
        if not images or not cats:
            raise EvaluationInputError(f"{where} holds no images or no categories; nothing can be evaluated")
        image_ids = _int_array([im["id"] for im in images], where, "image ids")
        category_ids = _int_array([c["id"] for c in cats], where, "category ids")
        images = [images[i] for i in np.argsort(image_ids, kind="stable")]
        cats = [cats[i] for i in np.argsort(category_ids, kind="stable")]
        image_ids, category_ids = np.sort(image_ids), np.sort(category_ids)
        for name, ids in (("image", image_ids), ("category", category_ids)):
            if np.any(ids[1:] == ids[:-1]):
                raise EvaluationInputError(f"{where} repeats {name} ids; LVIS ids must be unique")
        bad = sorted({str(c["frequency"]) for c in cats} - set(FREQUENCIES))
        if bad:
            raise EvaluationInputError(f"{where} has category frequencies {bad}; LVIS uses only 'r', 'c', 'f'")
        categories = tuple(
            Category(
                int(c["id"]),
                str(c.get("name", c["id"])),
                str(c["frequency"]),
                None if c.get("image_count") is None else int(c["image_count"]),
            )
            for c in cats
        )
        for field_name in ("neg_category_ids", "not_exhaustive_category_ids"):
            _int_array([c for im in images for c in im[field_name]], where, field_name)
        ann_image_ids = _int_array([a["image_id"] for a in anns], where, "annotation image ids")
        ann_cat_ids = _int_array([a["category_id"] for a in anns], where, "annotation category ids")
        ann_ids = _int_array([a["id"] for a in anns], where, "annotation ids")
        if np.unique(ann_ids).size != ann_ids.size:
            raise EvaluationInputError(f"{where} repeats annotation ids; LVIS annotation ids must be unique")
        try:
            area = np.array([a["area"] for a in anns], dtype=np.float64)
        except (TypeError, ValueError):
            raise EvaluationInputError(f"{where} is not LVIS format: annotation areas must be numbers") from None
        hint = "every annotation must refer to an entry of 'images' and of 'categories'"
        _index_of(image_ids, ann_image_ids, f"{where} has annotations on image ids", "'images'", hint)
        _index_of(category_ids, ann_cat_ids, f"{where} has annotations of category ids", "'categories'", hint)
        # lvis-api's get_ann_ids keeps only 0 < area < inf (LVIS.get_ann_ids with cat_ids), so do we.
        kept = np.flatnonzero((area > 0) & (area < np.inf))
        return cls(
            path=path,
            image_ids=image_ids,
            heights=_int_array([im["height"] for im in images], where, "image heights"),
            widths=_int_array([im["width"] for im in images], where, "image widths"),
            categories=categories,
            category_ids=category_ids,
            ann_ignore=np.array([bool(anns[i].get("ignore", 0)) for i in kept], dtype=bool),
            ann_crowd=np.array([bool(anns[i].get("iscrowd", 0)) for i in kept], dtype=bool),
            ann_id=ann_ids[kept],
            ann_records=tuple(anns[i] for i in kept),
            all_annotations_evaluated=kept.size == len(anns),
        )

    @property
    def num_categories(self) -> int:
        return len(self.categories)

    def frequency_groups(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Category indices of the r, c and f groups (lvis-api's ``freq_groups``)."""
        freq = np.array([c.frequency for c in self.categories])
        return tuple(np.flatnonzero(freq == f) for f in FREQUENCIES)  # type: ignore[return-value]

    def reference_only(self) -> str | None:
        """Why only lvis-api itself evaluates this file exactly (hotcoco reads it otherwise), or None.

        lvis-api honours an optional per-annotation ``ignore`` flag, ignores ``iscrowd``, and its matcher stores the
        matched annotation's id as the match flag, so a detection matched to annotation id 0 never counts as a true
        positive. LVIS files have none of these; hotcoco reads each otherwise (crowd annotations as COCO does).
        """
        if self.ann_ignore.any():
            return f"{int(self.ann_ignore.sum())} annotation(s) carry lvis-api's optional 'ignore' flag"
        if self.ann_crowd.any():
            return f"{int(self.ann_crowd.sum())} annotation(s) are marked iscrowd, which lvis-api ignores"
        if (self.ann_id == 0).any():
            return "an annotation has id 0, which lvis-api's matcher never counts as a true positive"
        return None

    def image_index(self, image_ids: np.ndarray) -> np.ndarray:
        """(N,) indices of detections' ``image_ids``; EvaluationInputError naming any id not in the annotations."""
        return _index_of(
            self.image_ids,
            image_ids,
            "results hold image ids",
            f"the annotations ({self.path})",
            "evaluate against the annotation file of the images the detections were made on",
        )

    def category_index(self, category_ids: np.ndarray) -> np.ndarray:
        """(N,) indices of detections' ``category_ids``; EvaluationInputError naming any id not in the dataset."""
        return _index_of(
            self.category_ids,
            category_ids,
            "results use category ids",
            "the dataset",
            "the results must use the dataset's category ids (not contiguous model labels)",
        )

    def require(self, iou_types: tuple[str, ...]) -> None:
        """Check that every evaluated annotation has what ``iou_types`` need (a box; a polygon or RLE mask)."""
        if "bbox" in iou_types:
            self.boxes()
        if "segm" in iou_types:
            for ann in self.ann_records:
                if not _is_mask(ann.get("segmentation")):
                    raise EvaluationInputError(
                        f"annotation id {ann['id']} in {self.path} has no polygon or RLE 'segmentation'; segm "
                        "evaluation needs one on every annotation"
                    )

    def boxes(self) -> np.ndarray:
        """(G, 4) float64 xywh boxes of the evaluated annotations (needed for bbox evaluation; cached)."""
        if "bbox" not in self._boxes:
            try:
                boxes = np.array([a["bbox"] for a in self.ann_records], dtype=np.float64).reshape(-1, 4)
            except (KeyError, TypeError, ValueError):
                raise EvaluationInputError(
                    f"annotation file {self.path} has annotations without a 4-number 'bbox'; bbox evaluation "
                    "needs one on every annotation"
                ) from None
            self._boxes["bbox"] = boxes
        return self._boxes["bbox"]


def _is_mask(segm: Any) -> bool:
    """A non-empty polygon list or an RLE dict (what lvis-api's ``ann_to_rle`` converts)."""
    return (isinstance(segm, list) and bool(segm)) or (isinstance(segm, dict) and "counts" in segm and "size" in segm)


def _records(items: Any, required: tuple[str, ...], where: str, kind: str) -> list[dict[str, Any]]:
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise EvaluationInputError(f"{where} is not LVIS format: '{kind}' entries must be a list of objects")
    for x in items:
        missing = [k for k in required if k not in x]
        if missing:
            raise EvaluationInputError(
                f"{where} is not LVIS format: {kind} {x.get('id', '?')} lacks {missing} "
                f"(LVIS {kind}s need {list(required)})"
            )
    return items


def _int_array(values: list[Any], where: str, what: str) -> np.ndarray:
    try:
        return np.array(values, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise EvaluationInputError(f"{where} is not LVIS format: {what} must be integers") from None


def _index_of(sorted_ids: np.ndarray, ids: np.ndarray, what: str, where: str, hint: str) -> np.ndarray:
    """Indices of ``ids`` in ``sorted_ids``; one-line EvaluationInputError naming the ids that are absent."""
    idx = np.searchsorted(sorted_ids, ids)
    clipped = np.minimum(idx, len(sorted_ids) - 1)
    unknown = (idx >= len(sorted_ids)) | (sorted_ids[clipped] != ids)
    if np.any(unknown):
        bad = np.unique(ids[unknown])
        shown = ", ".join(str(int(i)) for i in bad[:5]) + (", ..." if bad.size > 5 else "")
        raise EvaluationInputError(
            f"{what} not in {where}: {bad.size} id(s) ({shown}) on {int(unknown.sum())} entries; {hint}"
        )
    return idx.astype(np.int64)
