"""The ``threads`` setting: torch's intra-op threads for a run, or torch's default when null or absent."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from gol.engine import set_threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_are_applied(restore_threads):
    set_threads(OmegaConf.create({"threads": 1}))
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("cfg", [{"threads": None}, {}])
def test_null_or_absent_keeps_torch_default(restore_threads, cfg):
    torch.set_num_threads(1)
    set_threads(OmegaConf.create(cfg))
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("value", [0, -2, True, 1.5])
def test_bad_thread_counts_are_refused(restore_threads, value):
    with pytest.raises(ValueError, match="threads must be a positive number"):
        set_threads(OmegaConf.create({"threads": value}))
