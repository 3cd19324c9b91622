"""GolTransform: shorter-side resize (random at train, fixed at test), max-size cap, and the way back."""

from __future__ import annotations

import pytest
import torch

from gol.activations import Softmax
from gol.losses import CrossEntropyLoss
from gol.models import GolTransform
from gol.models.tiny import build_tiny


def _target(height: int, width: int) -> dict[str, torch.Tensor]:
    masks = torch.zeros(1, height, width, dtype=torch.uint8)
    masks[0, 10:30, 20:60] = 1
    return {"boxes": torch.tensor([[20.0, 10.0, 60.0, 30.0]]), "labels": torch.tensor([1]), "masks": masks}


def test_training_draws_the_shorter_side_from_train_sizes() -> None:
    transform = GolTransform(train_sizes=(60, 80, 100), test_size=90, max_size=1000).train()
    torch.manual_seed(0)
    seen = set()
    for _ in range(30):
        image, target = transform.resize(torch.rand(3, 50, 75), _target(50, 75))
        short, _long = sorted(image.shape[-2:])
        seen.add(short)
        scale = short / 50
        assert target["masks"].shape[-2:] == image.shape[-2:]
        torch.testing.assert_close(
            target["boxes"], torch.tensor([[20.0, 10.0, 60.0, 30.0]]) * scale, rtol=0.02, atol=0.5
        )
    assert seen == {60, 80, 100}


def test_eval_uses_test_size_and_max_size_caps_the_longer_side() -> None:
    transform = GolTransform(train_sizes=(60,), test_size=90, max_size=200).eval()
    image, _ = transform.resize(torch.rand(3, 50, 75))
    assert tuple(image.shape[-2:]) == (90, 135)
    image, target = transform.resize(torch.rand(3, 50, 400), _target(50, 400))
    assert tuple(image.shape[-2:]) == (25, 200)  # 400 -> 200 caps the scale at 0.5
    torch.testing.assert_close(target["boxes"], torch.tensor([[10.0, 5.0, 30.0, 15.0]]))


def test_batch_is_normalised_padded_to_32_and_predictions_return_to_image_coordinates() -> None:
    transform = GolTransform(train_sizes=(64,), test_size=64, max_size=200).eval()
    images = [torch.full((3, 40, 60), 0.5), torch.full((3, 32, 32), 0.5)]
    batch, _ = transform(images)
    assert batch.image_sizes == [(64, 96), (64, 64)]
    assert batch.tensors.shape == (2, 3, 64, 96)
    expected = (0.5 - torch.tensor(transform.image_mean)) / torch.tensor(transform.image_std)
    torch.testing.assert_close(batch.tensors[1, :, 0, 0], expected)

    predictions = [
        {"boxes": torch.tensor([[16.0, 16.0, 48.0, 32.0]]), "masks": torch.ones(1, 1, 28, 28)},
        {"boxes": torch.tensor([[0.0, 0.0, 64.0, 64.0]]), "masks": torch.ones(1, 1, 28, 28)},
    ]
    out = transform.postprocess(predictions, batch.image_sizes, [(40, 60), (32, 32)])
    torch.testing.assert_close(out[0]["boxes"], torch.tensor([[10.0, 10.0, 30.0, 20.0]]))
    torch.testing.assert_close(out[1]["boxes"], torch.tensor([[0.0, 0.0, 32.0, 32.0]]))
    assert out[0]["masks"].shape == (1, 1, 40, 60)


@pytest.mark.parametrize(
    ("train_sizes", "test_size", "max_size", "match"),
    [
        ((), 64, 100, "train_sizes"),
        ((0, 64), 64, 100, "train_sizes"),
        ((64,), 0, 100, "positive"),
        ((64, 128), 64, 100, "max_size"),
    ],
)
def test_bad_sizes_are_rejected(train_sizes, test_size: int, max_size: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GolTransform(train_sizes=train_sizes, test_size=test_size, max_size=max_size)


def test_uint8_images_give_the_numbers_of_float_images() -> None:
    """Datasets hand over uint8 (4x less to copy to the device); the model's output equals that of x / 255."""

    torch.manual_seed(0)
    model = build_tiny(num_classes=3, cls_loss=CrossEntropyLoss(activation=Softmax(), num_classes=3),
                       train_sizes=(64,), test_size=64, max_size=128).eval()  # fmt: skip
    g = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 256, (3, 48, 60), generator=g, dtype=torch.uint8),
              torch.randint(0, 256, (3, 40, 40), generator=g, dtype=torch.uint8)]  # fmt: skip
    with torch.inference_mode():
        as_uint8 = model(images)
        as_float = model([image.float() / 255 for image in images])
    for a, b in zip(as_uint8, as_float):
        assert a.keys() == b.keys() and len(a["boxes"]) > 0
        for key in a:
            assert torch.equal(a[key], b[key]), key

    transform = GolTransform(train_sizes=(64,), test_size=64, max_size=200).eval()
    batch_u8, _ = transform([images[0]])
    batch_f, _ = transform([images[0].float().div(255)])
    assert torch.equal(batch_u8.tensors, batch_f.tensors)
