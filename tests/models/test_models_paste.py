"""The batched mask paste equals torchvision's per-mask ``paste_masks_in_image``; the box-local paste equals it bit for
bit inside each box; GolTransform leaves masks in box coordinates when asked."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from gol.models import GolTransform
from gol.models.paste import paste_in_boxes, paste_masks
from gol.models.transform import masks_in_boxes


def _detections(seed: int, n: int, height: int, width: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Random masks and boxes inside the image (detections are clipped to it), many on an edge or under a pixel."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, generator=g, dtype=torch.float64) * (width + 4) - 2
    y0 = torch.rand(n, generator=g, dtype=torch.float64) * (height + 4) - 2
    x1 = x0 + torch.rand(n, generator=g, dtype=torch.float64) ** 2 * width
    y1 = y0 + torch.rand(n, generator=g, dtype=torch.float64) ** 2 * height
    limits = torch.tensor([width, height, width, height], dtype=torch.float64)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).clamp(min=0).minimum(limits).to(torch.float32)  # (N, 4)
    return torch.rand(n, 1, 28, 28, generator=g, dtype=dtype), boxes


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 12),
    height=st.integers(1, 90),
    width=st.integers(1, 90),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_paste_equals_torchvision(seed: int, n: int, height: int, width: int, dtype: torch.dtype) -> None:
    masks, boxes = _detections(seed, n, height, width, dtype)
    ours = paste_masks(masks, boxes, (height, width))
    reference = paste_masks_in_image(masks, boxes, (height, width))
    assert ours.shape == reference.shape == (n, 1, height, width)
    assert ours.dtype == reference.dtype
    # float64 shows the arithmetic is the same; float32 differs only by ATen's own float32 rounding of the weights.
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(ours, reference, rtol=0.0, atol=tolerance)


def test_no_detections_give_an_empty_stack() -> None:
    out = paste_masks(torch.zeros(0, 1, 28, 28), torch.zeros(0, 4), (40, 50))
    assert out.shape == (0, 1, 40, 50)


def test_postprocess_matches_torchvision_transform() -> None:
    gol = GolTransform(train_sizes=(64,), test_size=64, max_size=200).eval()
    torchvision = GeneralizedRCNNTransform(64, 200, gol.image_mean, gol.image_std, size_divisible=32).eval()
    masks, boxes = _detections(3, 7, 64, 96, torch.float32)
    outputs = []
    for transform in (gol, torchvision):
        predictions = [{"boxes": boxes.clone(), "masks": masks.clone(), "scores": torch.ones(7)}]
        outputs.append(transform.postprocess(predictions, [(64, 96)], [(40, 60)])[0])
    torch.testing.assert_close(outputs[0]["boxes"], outputs[1]["boxes"])
    torch.testing.assert_close(outputs[0]["masks"], outputs[1]["masks"], rtol=0.0, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 12),
    height=st.integers(1, 60),
    width=st.integers(1, 60),
    dtype=st.sampled_from([torch.float16, torch.float32, torch.float64]),
)
def test_box_local_paste_is_the_full_paste_inside_each_box(
    seed: int, n: int, height: int, width: int, dtype: torch.dtype
) -> None:
    masks, boxes = _detections(seed, n, height, width, dtype)
    boxes[::2] = boxes[::2] * 3 - 20  # some boxes partly or wholly outside the image
    full = paste_masks(masks, boxes, (height, width))
    local = paste_in_boxes(masks, boxes, (height, width))
    rebuilt = torch.zeros_like(full)
    assert len(local.blocks) == n and local.regions.shape == (n, 4)
    for i, ((x0, y0, x1, y1), block) in enumerate(zip(local.regions.tolist(), local.blocks)):
        assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height
        assert block.shape == (y1 - y0, x1 - x0) and block.dtype == dtype
        assert block.T.is_contiguous()  # column-major, the order of an RLE
        rebuilt[i, 0, y0:y1, x0:x1] = block
    assert torch.equal(rebuilt, full)  # the same bits, and zero outside the regions


def test_postprocess_leaves_masks_in_box_coordinates_inside_masks_in_boxes() -> None:
    transform = GolTransform(train_sizes=(64,), test_size=64, max_size=200).eval()
    model = torch.nn.Module()
    model.transform = transform
    masks, boxes = _detections(5, 4, 64, 96, torch.float32)
    with masks_in_boxes(model):
        assert not transform.masks_in_image
        out = transform.postprocess([{"boxes": boxes.clone(), "masks": masks.clone()}], [(64, 96)], [(40, 60)])[0]
    assert transform.masks_in_image  # restored
    assert "masks" not in out and torch.equal(out["box_masks"], masks)
    assert out["image_size"].tolist() == [40, 60]
    pasted = transform.postprocess([{"boxes": boxes.clone(), "masks": masks.clone()}], [(64, 96)], [(40, 60)])[0]
    torch.testing.assert_close(out["boxes"], pasted["boxes"], rtol=0.0, atol=0.0)
    assert torch.equal(paste_masks(out["box_masks"], out["boxes"], (40, 60)), pasted["masks"])
    other = torch.nn.Module()  # no GolTransform: left as it is
    with masks_in_boxes(other):
        pass
