"""Data-parallel training on CPU: two gloo processes give the loss and gradients of one process on the same
global batch, through gol's own process-group set-up, batch sharding and step."""

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import Dataset

from gol import distributed
from gol.activations import get_activation
from gol.loader import StreamPosition, batches
from gol.losses import CrossEntropyLoss
from gol.models import build_tiny
from tests_support import free_port

K = 3


class TwoImages(Dataset):
    """Two fixed images with one box each (deterministic, no augmentation)."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        image = torch.rand(3, 64, 64, generator=g)
        box = torch.tensor([[8.0 + 8 * i, 10.0, 40.0 + 8 * i, 44.0]])
        mask = torch.zeros(1, 64, 64, dtype=torch.uint8)
        mask[0, 10:44, 8 + 8 * i : 40 + 8 * i] = 1
        return image, {"boxes": box, "labels": torch.tensor([i + 1]), "masks": mask, "image_id": i}


class Repeated:
    """Order [0, 1, 0, 1]: the global batch of 4 holds each image twice, so every shard sees the same content."""

    def set_epoch(self, epoch):
        pass

    def __len__(self):
        return 4

    def __iter__(self):
        return iter([0, 1, 0, 1])


def model(activation="softmax"):
    torch.manual_seed(0)
    net = build_tiny(
        num_classes=K,
        cls_loss=CrossEntropyLoss(activation=get_activation(activation), num_classes=K),
        train_sizes=[64],
        test_size=64,
        max_size=64,
    )
    # Take every anchor and every proposal: no random subsampling, so shards and the full batch see the same sets.
    net.rpn.fg_bg_sampler.batch_size_per_image = 10**6
    net.roi_heads.fg_bg_sampler.batch_size_per_image = 10**6
    return net.train()


def loss_and_grads(net, world):
    stream = batches(
        TwoImages(),
        Repeated(),
        batch_size=4,
        start=StreamPosition(),
        seed=0,
        num_workers=0,
        rank=world.rank,
        world_size=world.world_size,
    )
    _, (images, targets) = next(stream)
    stream.close()
    trained = torch.nn.parallel.DistributedDataParallel(net) if world.distributed else net
    total = sum(trained(images, targets).values())
    total.backward()
    loss = distributed.mean_over_ranks(total, world)
    return float(loss), {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def _worker(rank, port, out, activation):
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    world = distributed.init("cpu")
    try:
        result = loss_and_grads(model(activation), world)
        if world.is_main:
            torch.save(result, out)
    finally:
        distributed.shutdown(world)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("activation", ["softmax", "aglu"])  # aglu: its learnable lambda, kappa all-reduced too
def test_two_gloo_processes_match_one_process_on_the_global_batch(tmp_path, activation):
    single_loss, single_grads = loss_and_grads(model(activation), distributed.World())
    if activation == "aglu":
        assert {"roi_heads.cls_loss.activation_params.lambda_param",
                "roi_heads.cls_loss.activation_params.kappa_param"} <= single_grads.keys()  # fmt: skip
    out = tmp_path / "rank0.pt"
    mp.start_processes(_worker, args=(free_port(), out, activation), nprocs=2, join=True, start_method="spawn")
    ddp_loss, ddp_grads = torch.load(out)
    assert ddp_loss == pytest.approx(single_loss, rel=1e-5)
    assert ddp_grads.keys() == single_grads.keys()
    for name, grad in single_grads.items():
        torch.testing.assert_close(ddp_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_a_global_batch_that_does_not_split_is_refused():
    with pytest.raises(ValueError, match="multiple of 2"):
        next(
            batches(
                TwoImages(),
                Repeated(),
                batch_size=3,
                start=StreamPosition(),
                seed=0,
                num_workers=0,
                rank=0,
                world_size=2,
            )
        )


def _failing_worker(rank, port, run_dir, out, how):
    """Rank 1 fails with its own error (noted as the engine notes it, then it leaves the group), is killed, or rank
    0 fails; the other rank's next collective fails, and rank 0 saves what it would record."""
    import os
    import signal

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    world = distributed.init("cpu")
    try:
        if rank == 1 and how.startswith("killed"):
            os.kill(os.getpid(), signal.SIGKILL)
        if rank == {"rank 1 fails": 1, "rank 0 fails": 0}.get(how):
            raise ValueError(f"image of rank {rank} could not be decoded\nsecond line")
        if how == "killed while predicting":
            distributed.gather_to_main(rank, world)  # the gather of the detections, where rank 0 waits for the shards
        distributed.wait_for_main(world)  # the long-timeout wait: it still ends at once when the peer is gone
        distributed.mean_over_ranks(torch.ones(()), world)
    except Exception as error:
        distributed.note_failure(run_dir, world, error)
        if world.is_main:
            recorded = distributed.failure_of_job(run_dir, world, error)
            torch.save(f"{type(recorded).__name__}: {recorded}".splitlines()[0], out)
    finally:
        distributed.shutdown(world)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("how", "recorded"),
    [
        ("rank 1 fails", "JobFailure: process 1 of 2 failed: ValueError: image of rank 1 could not be decoded"),
        ("rank 0 fails", "ValueError: image of rank 0 could not be decoded"),
        ("killed", "JobFailure: another process of the job died or stopped responding (RuntimeError: "),
        ("killed while predicting", "JobFailure: another process of the job died or stopped responding ("),
    ],
)
def test_rank_zero_records_the_error_of_the_process_that_failed(tmp_path, how, recorded):
    import multiprocessing
    import time

    out = tmp_path / "recorded.pt"
    spawn = multiprocessing.get_context("spawn")
    port = free_port()
    processes = [spawn.Process(target=_failing_worker, args=(r, port, tmp_path, out, how)) for r in (0, 1)]
    start = time.monotonic()
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=90)
    assert all(p.exitcode is not None for p in processes), "a process still waits for a peer that is gone"
    assert torch.load(out).startswith(recorded)
    assert time.monotonic() - start < 60
