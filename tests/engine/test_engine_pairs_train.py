"""Every valid (activation, loss) pair trains: a short run on a batch of the embedded dataset lowers its loss."""

import pytest
import torch

from gol.build import build_components
from gol.data import collate
from gol.losses import VALID_PAIRS
from tests_support import compose_train

PAIRS = [(activation, loss) for loss, activations in VALID_PAIRS.items() for activation in activations]


@pytest.mark.parametrize("activation,loss", PAIRS)
def test_short_training_lowers_the_loss(activation, loss, tmp_path, data_root):
    cfg = compose_train(
        ["scale=smoke", f"activation={activation}", f"loss={loss}", f"paths.data_root={data_root}"], tmp_path
    )
    torch.manual_seed(0)
    parts = build_components(cfg)
    images, targets = collate([parts.data.train[i] for i in range(4)])
    model = parts.model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    history = []
    for _ in range(12):
        losses = model(images, targets)
        total = sum(losses.values())
        assert all(torch.isfinite(v) for v in losses.values()), losses
        history.append(float(total.detach()))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    # The classification term alone is no yardstick: as the RPN learns, more positive RoIs enter its average.
    assert history[-1] < 0.8 * history[0], f"the loss did not fall: {history}"
