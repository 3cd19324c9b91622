"""Annotation -> target conversion (exact small cases) and the horizontal flip."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from gol.data.targets import annotations_to_target, segmentation_to_rle, segmentations_to_masks
from gol.data.transforms import Compose, RandomHorizontalFlip, hflip
from gol.lvis_compat import LVIS

SQUARE = [[1.0, 1.0, 4.0, 1.0, 4.0, 3.0, 1.0, 3.0]]  # covers rows 1..2, columns 1..3 under pycocotools
SQUARE_MASK = np.zeros((5, 6), dtype=np.uint8)
SQUARE_MASK[1:3, 1:4] = 1


def test_polygon_mask_exact() -> None:
    masks = segmentations_to_masks([SQUARE], height=5, width=6)
    assert masks.dtype == torch.uint8 and masks.shape == (1, 5, 6)
    assert np.array_equal(masks[0].numpy(), SQUARE_MASK)


def test_multi_part_polygon_is_merged() -> None:
    two_parts = [SQUARE[0], [4.0, 4.0, 6.0, 4.0, 6.0, 5.0, 4.0, 5.0]]
    mask = segmentations_to_masks([two_parts], height=5, width=6)[0].numpy()
    expected = SQUARE_MASK.copy()
    expected[4, 4:6] = 1
    assert np.array_equal(mask, expected)


def test_uncompressed_rle_exact() -> None:
    # Column-major runs on a 3x2 image: 1 zero, 2 ones, 3 zeros.
    mask = segmentations_to_masks([{"size": [3, 2], "counts": [1, 2, 3]}], height=3, width=2)[0].numpy()
    assert np.array_equal(mask, np.array([[0, 0], [1, 0], [1, 0]], dtype=np.uint8))


def test_compressed_rle_roundtrip() -> None:
    rng = np.random.default_rng(0)
    want = (rng.random((7, 9)) > 0.5).astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(want))
    rle["counts"] = rle["counts"].decode()  # JSON files store the counts as str
    got = segmentations_to_masks([rle], height=7, width=9)[0].numpy()
    assert np.array_equal(got, want)


def test_same_masks_as_lvis_api(tmp_path) -> None:
    rle = mask_utils.encode(np.asfortranarray(SQUARE_MASK))
    rle["counts"] = rle["counts"].decode()
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": SQUARE, "bbox": [1, 1, 3, 2], "area": 6},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": rle, "bbox": [1, 1, 3, 2], "area": 6},
    ]
    import json

    path = tmp_path / "a.json"
    path.write_text(json.dumps({"images": [{"id": 1, "height": 5, "width": 6}], "annotations": anns, "categories": []}))
    api = LVIS(str(path))
    ours = segmentations_to_masks([a["segmentation"] for a in anns], height=5, width=6).numpy()
    for a, m in zip(anns, ours):
        assert np.array_equal(api.ann_to_mask(a), m)


def test_unsupported_segmentation_one_line() -> None:
    with pytest.raises(ValueError) as err:
        segmentation_to_rle("nope", height=2, width=2)
    assert "\n" not in str(err.value)


def test_target_boxes_labels_and_degenerate_drop() -> None:
    anns = [
        {"bbox": [1.0, 1.0, 3.0, 2.0], "category_id": 9, "segmentation": SQUARE},
        {"bbox": [2.0, 2.0, 0.0, 1.0], "category_id": 5, "segmentation": SQUARE},  # zero width: dropped
        {"bbox": [4.0, 3.0, 5.0, 5.0], "category_id": 5, "segmentation": SQUARE},  # clipped to the 6x5 image
    ]
    t = annotations_to_target(anns, image_id=42, height=5, width=6, label_of={5: 1, 9: 2})
    assert t["image_id"] == 42
    assert t["boxes"].dtype == torch.float32 and t["labels"].dtype == torch.int64
    assert torch.equal(t["boxes"], torch.tensor([[1.0, 1.0, 4.0, 3.0], [4.0, 3.0, 6.0, 5.0]]))
    assert torch.equal(t["labels"], torch.tensor([2, 1]))
    assert t["masks"].shape == (2, 5, 6) and t["masks"].dtype == torch.uint8


def test_empty_target_shapes() -> None:
    t = annotations_to_target([], image_id=1, height=4, width=3, label_of={})
    assert t["boxes"].shape == (0, 4) and t["labels"].shape == (0,) and t["masks"].shape == (0, 4, 3)


def _sample() -> tuple[torch.Tensor, dict]:
    image = torch.arange(3 * 3 * 4, dtype=torch.float32).reshape(3, 3, 4)  # (3, H, W)
    masks = torch.zeros((1, 3, 4), dtype=torch.uint8)
    masks[0, :, 0] = 1
    boxes = torch.tensor([[0.0, 0.0, 1.0, 3.0]])
    return image, {"boxes": boxes, "labels": torch.tensor([1]), "masks": masks, "image_id": 7}


def test_hflip_exact_and_involution() -> None:
    image, target = _sample()
    fi, ft = hflip(image, target)
    assert torch.equal(fi, image.flip(-1))
    assert torch.equal(ft["boxes"], torch.tensor([[3.0, 0.0, 4.0, 3.0]]))
    assert torch.equal(ft["masks"][0, :, 3], torch.ones(3, dtype=torch.uint8)) and ft["masks"][0, :, :3].sum() == 0
    assert ft["image_id"] == 7 and torch.equal(ft["labels"], target["labels"])
    bi, bt = hflip(fi, ft)
    assert torch.equal(bi, image) and torch.equal(bt["boxes"], target["boxes"])
    assert torch.equal(bt["masks"], target["masks"])


def test_flip_probability_extremes() -> None:
    image, target = _sample()
    assert torch.equal(RandomHorizontalFlip(1.0)(image, target)[0], image.flip(-1))
    assert torch.equal(RandomHorizontalFlip(0.0)(image, target)[0], image)
    with pytest.raises(ValueError):
        RandomHorizontalFlip(1.5)


def _flips(flip: Compose, n: int) -> list[bool]:
    image, target = _sample()
    return [not torch.equal(flip(image, target)[0], image) for _ in range(n)]


def test_flip_reproducible_with_generator_and_global_rng() -> None:
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = _flips(Compose([RandomHorizontalFlip(0.5, generator=g1)]), 40)
    b = _flips(Compose([RandomHorizontalFlip(0.5, generator=g2)]), 40)
    assert a == b and 0 < sum(a) < 40
    torch.manual_seed(11)
    c = _flips(Compose([RandomHorizontalFlip(0.5)]), 40)
    torch.manual_seed(11)
    d = _flips(Compose([RandomHorizontalFlip(0.5)]), 40)
    assert c == d
