import torch
from torch.utils.data import Dataset

from gol.loader import StreamPosition, batches


class Flips(Dataset):
    """Returns its index and one random draw, like a dataset with a random flip."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return torch.tensor(i), torch.rand(()).item()


class Shuffled:
    def __init__(self, n, seed):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


def take(stream, n):
    out = []
    for _ in range(n):
        pos, (images, draws) = next(stream)
        out.append((pos, [int(i) for i in images], draws))
    stream.close()
    return out


def test_resumed_stream_equals_uninterrupted(tmp_path):
    kw = dict(batch_size=3, seed=7, num_workers=0)
    full = take(batches(Flips(), Shuffled(10, 7), start=StreamPosition(), **kw), 8)
    resume_at = full[4][0]  # position after the 5th batch (second epoch)
    rest = take(batches(Flips(), Shuffled(10, 7), start=resume_at, **kw), 3)
    assert rest == full[5:8]


def test_workers_do_not_change_the_stream():
    kw = dict(batch_size=2, seed=1)
    a = take(batches(Flips(), Shuffled(10, 1), start=StreamPosition(), num_workers=0, **kw), 6)
    b = take(batches(Flips(), Shuffled(10, 1), start=StreamPosition(), num_workers=2, **kw), 6)
    assert a == b


def test_loading_in_process_leaves_the_training_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    take(batches(Flips(), Shuffled(10, 0), start=StreamPosition(), batch_size=2, seed=0, num_workers=0), 3)
    assert torch.equal(torch.rand(4), expected)


_WORKER_SCRIPT = """
import os, sys, time, functools
from torch.utils.data import DataLoader, Dataset
from gol.loader import end_with_parent

class Slow(Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        with open(sys.argv[1], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(120)
        return i

loader = DataLoader(Slow(), num_workers=1, worker_init_fn=functools.partial(end_with_parent, os.getpid()))
next(iter(loader))
"""


def _alive(pid):
    """Running (a zombie waiting for init to reap it is dead)."""
    from pathlib import Path

    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_loader_workers_end_with_a_killed_training_process(tmp_path):
    """A worker holds the sockets of the process that forked it (the process group's among them): killed with
    that process, its connections close and the job's other ranks see it gone at once."""
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, "-c", _WORKER_SCRIPT, str(pid_file)])
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        worker = int(pid_file.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 2  # well under the 5 s of PyTorch's own watchdog
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(worker), "the loader worker outlived its training process"
    finally:
        parent.kill()
