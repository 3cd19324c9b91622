"""``RLEs``: masks held as three arrays give back pycocotools' dicts, join, subset and pickle; so do Detections."""

from __future__ import annotations

import pickle

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gol.evaluation import Detections, EvaluationInputError, RLEs


def _dicts(seed: int, n: int, size: tuple[int, int] = (9, 7)) -> list[dict]:
    rng = np.random.default_rng(seed)
    masks = np.asfortranarray((rng.random((*size, n)) > 0.6).astype(np.uint8))
    return mask_utils.encode(masks) if n else []


def _detections(seed: int, n: int) -> Detections:
    rng = np.random.default_rng(seed)
    return Detections(
        image_ids=np.full(n, seed, np.int64),
        category_ids=rng.integers(1, 5, n),
        scores=rng.random(n),
        boxes=rng.random((n, 4)),
        segmentations=RLEs.from_dicts(_dicts(seed, n)),
    )


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 6), max_size=5), seed=st.integers(0, 2**16))
def test_join_and_subset_keep_every_mask(sizes: list[int], seed: int) -> None:
    parts = [_dicts(seed + i, n) for i, n in enumerate(sizes)]
    joined = RLEs.concatenate([RLEs.from_dicts(p) for p in parts])
    flat = [d for p in parts for d in p]
    assert len(joined) == len(flat)
    assert joined.dicts() == flat == list(joined)  # bytes counts, as pycocotools encodes them
    rows = np.random.default_rng(seed).permutation(len(flat))[: len(flat) // 2]
    assert joined.take(rows).dicts() == [flat[i] for i in rows.tolist()]
    assert pickle.loads(pickle.dumps(joined)).dicts() == flat


def test_text_counts_come_back_as_text() -> None:
    dicts = _dicts(0, 4)
    text = [{"size": d["size"], "counts": d["counts"].decode()} for d in dicts]
    rles = RLEs.from_dicts(text)
    assert rles.text and rles.dicts() == text and rles[1] == text[1]
    assert RLEs.from_dicts(dicts).dicts(text=True) == text
    assert not RLEs.concatenate([rles, RLEs.from_dicts(dicts)]).text  # mixed: bytes
    assert mask_utils.area(rles.dicts()).tolist() == mask_utils.area(dicts).tolist()
    assert rles[1:3].dicts() == text[1:3]
    with pytest.raises(IndexError):
        rles[4]


def test_bad_rles() -> None:
    with pytest.raises(EvaluationInputError, match=r"'size' must be \[height, width\]"):
        RLEs.from_dicts([{"size": [3], "counts": "abc"}])
    with pytest.raises(EvaluationInputError, match="ASCII"):
        RLEs.from_dicts([{"size": [3, 3], "counts": "é"}])
    with pytest.raises(EvaluationInputError, match="offsets"):
        RLEs(b"abc", np.array([0, 2]), np.zeros((1, 2), np.int64))
    with pytest.raises(EvaluationInputError, match=r"must be RLEs, got tuple; wrap .*RLEs.from_dicts"):
        Detections(np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1), None, tuple(_dicts(0, 1)))


def test_detections_pickle_join_and_subset() -> None:
    parts = [_detections(s, n) for s, n in [(1, 5), (2, 0), (3, 7)]]
    joined = Detections.concatenate(parts)
    back = pickle.loads(pickle.dumps(joined))
    assert back.to_results() == joined.to_results() == [r for p in parts for r in p.to_results()]
    rows = np.array([11, 0, 4])
    assert joined.subset(rows).to_results() == [joined.to_results()[i] for i in rows.tolist()]
    assert joined.segmentations is not None and joined.segmentations.sizes.tolist() == [[9, 7]] * 12


def test_areas_are_pycocotools_areas_past_its_255_mask_limit() -> None:
    dicts = _dicts(5, 600, size=(13, 11))
    rles = RLEs.from_dicts(dicts)
    expected = np.concatenate([mask_utils.area(dicts[i : i + 200]) for i in range(0, 600, 200)]).astype(float)
    np.testing.assert_array_equal(rles.areas(), expected)
    rows = np.array([599, 3, 3, 256])
    np.testing.assert_array_equal(rles.areas(rows), expected[rows])
