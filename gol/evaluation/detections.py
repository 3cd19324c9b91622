"""Detections in the dataset's ids, held column-wise so they travel from training to evaluation without JSON.

Shape shorthand: N = detections. Boxes are xywh in absolute pixels (the LVIS/COCO results format); masks are
compressed RLEs held in :class:`~gol.evaluation.rles.RLEs` (three arrays; pycocotools' dicts ``{"size": [H, W],
"counts": bytes | str}`` are made from them on demand).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import contains, itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from gol.evaluation.errors import EvaluationInputError
from gol.evaluation.ground_truth import GroundTruth, load_json
from gol.evaluation.rles import RLEs, fixed_length

NO_MASKS = "segm evaluation needs masks: the results have no 'segmentation'"


@dataclass(frozen=True, eq=False)
class Detections:
    """N detections: ``image_ids``, ``category_ids`` (N,) int64, ``scores`` (N,) float64, and at least one of
    ``boxes`` (N, 4) float64 xywh or ``segmentations`` (:class:`RLEs`, N compressed masks).

    Picklable (its arrays and the RLEs' three buffers), so it can be gathered across processes."""

    image_ids: np.ndarray
    category_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray | None = None
    segmentations: RLEs | None = None

    def __post_init__(self) -> None:
        n = self.image_ids.shape[0]
        for name in ("image_ids", "category_ids", "scores"):
            if getattr(self, name).shape != (n,):
                raise EvaluationInputError(f"Detections.{name} has shape {getattr(self, name).shape}, expected ({n},)")
        if self.boxes is not None and self.boxes.shape != (n, 4):
            raise EvaluationInputError(f"Detections.boxes has shape {self.boxes.shape}, expected ({n}, 4)")
        if self.segmentations is not None and not isinstance(self.segmentations, RLEs):
            raise EvaluationInputError(
                f"Detections.segmentations must be RLEs, got {type(self.segmentations).__name__}; wrap pycocotools' "
                "dicts with RLEs.from_dicts(...)"
            )
        if self.segmentations is not None and len(self.segmentations) != n:
            raise EvaluationInputError(f"Detections.segmentations has {len(self.segmentations)} entries, expected {n}")
        if self.boxes is None and self.segmentations is None:
            raise EvaluationInputError("detections need boxes ('bbox') or masks ('segmentation'); they have neither")
        if not np.all(np.isfinite(self.scores)):
            raise EvaluationInputError("detection scores must be finite numbers; some are NaN or infinite")
        if self.boxes is not None and not np.all(np.isfinite(self.boxes)):
            raise EvaluationInputError("detection boxes must be finite numbers; some are NaN or infinite")

    def __len__(self) -> int:
        return int(self.image_ids.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        """No detections (boxes and masks both present, so any IoU type can be evaluated)."""
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 4)), RLEs.empty())

    @classmethod
    def concatenate(cls, parts: Sequence[Detections]) -> Detections:
        """Join per-image (or per-batch) detections, keeping their order."""
        if not parts:
            return cls.empty()
        has_boxes = all(p.boxes is not None for p in parts)
        has_masks = all(p.segmentations is not None for p in parts)
        return cls(
            image_ids=np.concatenate([p.image_ids for p in parts]),
            category_ids=np.concatenate([p.category_ids for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            boxes=np.concatenate([p.boxes for p in parts]) if has_boxes else None,
            segmentations=(
                RLEs.concatenate([p.segmentations for p in parts if p.segmentations is not None]) if has_masks else None
            ),
        )

    @classmethod
    def from_results(
        cls,
        results: Any,
        *,
        source: str = "results",
        iou_types: Sequence[str] = ("bbox", "segm"),
        segm_area: str | None = "mask",
    ) -> Detections:
        """Read a list of LVIS result dicts (``image_id``, ``category_id``, ``score``, ``bbox`` and/or
        ``segmentation``), checking their structure.

        Only the geometry ``iou_types`` use is read: segm evaluation reads ``bbox`` only when its areas may come
        from the boxes (``segm_area`` "box", or None: box areas if the results carry ``bbox``); bbox evaluation
        reads ``segmentation`` only when the results have no ``bbox``.
        """
        if not isinstance(results, list):
            raise EvaluationInputError(f"{source} must be a JSON list of detections, got {type(results).__name__}")
        if not results:
            return cls.empty()
        n = len(results)
        # One C-level pass per check: LVIS result files hold hundreds of thousands of detections.
        if set(map(type, results)) != {dict} and not all(isinstance(r, Mapping) for r in results):
            raise EvaluationInputError(f"{source} must be a list of objects (one per detection)")
        try:
            image_ids = np.fromiter(map(itemgetter("image_id"), results), dtype=np.int64, count=n)
            category_ids = np.fromiter(map(itemgetter("category_id"), results), dtype=np.int64, count=n)
            scores = np.fromiter(map(itemgetter("score"), results), dtype=np.float64, count=n)
        except KeyError as e:
            key = e.args[0]
            raise EvaluationInputError(
                f"{source}: {n - present_in(results, key)} detection(s) lack '{key}'; every detection needs it"
            ) from None
        except (TypeError, ValueError, OverflowError):
            raise EvaluationInputError(f"{source}: image_id and category_id must be integers, score a number") from None
        read_boxes = "bbox" in iou_types or ("segm" in iou_types and segm_area != "mask")
        box_column = _optional_column(results, "bbox", source) if read_boxes else None
        mask_column = (
            _optional_column(results, "segmentation", source) if "segm" in iou_types or box_column is None else None
        )
        if "segm" in iou_types and mask_column is None:
            raise EvaluationInputError(NO_MASKS)
        boxes = None
        if box_column is not None:
            boxes = fixed_length(box_column, 4, np.float64)
            if boxes is None:
                raise EvaluationInputError(f"{source}: every 'bbox' must be 4 numbers [x, y, width, height]")
        segmentations = None
        if mask_column is not None:
            try:  # a polygon list fails on ["counts"] (TypeError), a dict without it with KeyError
                kinds = set(map(type, map(itemgetter("counts"), mask_column)))
            except (KeyError, TypeError):
                kinds = {list}
            if not kinds <= {str, bytes} or present_in(mask_column, "size") < n:
                raise EvaluationInputError(
                    f"{source}: every 'segmentation' must be a compressed RLE {{'size': [h, w], 'counts': str}} "
                    "(lvis-api accepts no polygons in results)"
                )
            segmentations = RLEs.from_dicts(mask_column)
        return cls(image_ids, category_ids, scores, boxes, segmentations)

    @classmethod
    def load(
        cls, path: str | Path, *, iou_types: Sequence[str] = ("bbox", "segm"), segm_area: str | None = "mask"
    ) -> Detections:
        """Read an LVIS results JSON file (the geometry ``iou_types`` use, see :meth:`from_results`)."""
        path = Path(path)
        return cls.from_results(
            load_json(path, "results"), source=f"results file {path}", iou_types=iou_types, segm_area=segm_area
        )

    def subset(self, rows: np.ndarray) -> Detections:
        """The detections at integer positions ``rows`` (in that order)."""
        return Detections(
            image_ids=self.image_ids[rows],
            category_ids=self.category_ids[rows],
            scores=self.scores[rows],
            boxes=None if self.boxes is None else self.boxes[rows],
            segmentations=None if self.segmentations is None else self.segmentations.take(rows),
        )

    def to_results(self, *, boxes: bool = True, masks: bool = True) -> list[dict[str, Any]]:
        """LVIS result dicts (JSON-ready: RLE counts as str); ``boxes``/``masks`` choose which geometry to keep."""
        keep_boxes = boxes and self.boxes is not None
        keep_masks = masks and self.segmentations is not None
        out: list[dict[str, Any]] = [
            {"image_id": i, "category_id": c, "score": s}
            for i, c, s in zip(self.image_ids.tolist(), self.category_ids.tolist(), self.scores.tolist())
        ]
        if keep_boxes:
            for r, b in zip(out, self.boxes.tolist()):  # type: ignore[union-attr]
                r["bbox"] = b
        if keep_masks:
            for r, m in zip(out, self.segmentations.dicts(text=True)):  # type: ignore[union-attr]
                r["segmentation"] = m
        return out

    def check(self, gt: GroundTruth, iou_types: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Check the detections against ``gt`` for ``iou_types``; returns (N,) image and category indices."""
        image_index = gt.image_index(self.image_ids)
        category_index = gt.category_index(self.category_ids)
        if "segm" in iou_types and self.segmentations is None:
            raise EvaluationInputError(NO_MASKS)
        if self.segmentations is not None and len(self):
            sizes = self.segmentations.sizes  # (N, 2)
            wrong = (sizes[:, 0] != gt.heights[image_index]) | (sizes[:, 1] != gt.widths[image_index])
            if np.any(wrong):
                first = int(np.flatnonzero(wrong)[0])
                raise EvaluationInputError(
                    f"{int(wrong.sum())} mask(s) have a size other than their image's, e.g. detection {first} on "
                    f"image {int(self.image_ids[first])}: {sizes[first].tolist()} vs "
                    f"{[int(gt.heights[image_index[first]]), int(gt.widths[image_index[first]])]}; encode masks at "
                    "the original image size"
                )
        return image_index, category_index


def present_in(items: Sequence[Mapping[str, Any]], key: str) -> int:
    """How many of ``items`` hold ``key``."""
    return sum(map(contains, items, repeat(key)))


def _optional_column(results: list[Mapping[str, Any]], key: str, source: str) -> list[Any] | None:
    """Every result's ``key``, or None if no result has it; EvaluationInputError if only some do (lvis-api
    decides from the first result alone)."""
    if key in results[0]:
        try:
            return list(map(itemgetter(key), results))
        except KeyError:
            pass
    elif not any(map(contains, results, repeat(key))):
        return None
    count = present_in(results, key)
    raise EvaluationInputError(
        f"{source}: {count} of {len(results)} detections have '{key}'; give it on all of them or none"
    )
