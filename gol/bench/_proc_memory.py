"""A process's memory as Linux accounts it (``/proc/<pid>/smaps_rollup``), and a process's forked children.

RSS counts every resident page a process maps, shared ones included; PSS divides each shared page among the
processes sharing it (summed over processes, it is what they hold together); USS (private clean + private dirty) is
what the process alone holds: what freeing it would return. Private dirty is the part of USS the process wrote
(its heap and its copy-on-write copies); USS adds private clean pages, such as file pages only this process has
read so far (a memory-mapped annotation cache: page cache, shared as soon as another process reads the same pages,
and reclaimable). A forked DataLoader worker starts with USS near zero,
sharing the training process's pages, and grows as it writes to them (copy-on-write: reference counts of the
Python objects it reads are writes).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

KIB_PER_MIB = 1024


@dataclass(frozen=True)
class Memory:
    """One process's resident memory, MiB."""

    rss: float
    pss: float
    uss: float
    dirty: float  # private dirty

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def read_memory(pid: int | str = "self") -> Memory:
    """RSS, PSS and USS of process ``pid`` (``"self"``: this one) from ``/proc/<pid>/smaps_rollup`` (Linux >= 4.14)."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0]) / KIB_PER_MIB
    return Memory(
        rss=fields["Rss"],
        pss=fields["Pss"],
        uss=fields.get("Private_Clean", 0.0) + fields.get("Private_Dirty", 0.0),
        dirty=fields.get("Private_Dirty", 0.0),
    )


def max_rss_mib() -> float:
    """This process's peak resident memory so far (``ru_maxrss``, which Linux reports in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB


def forked_children(pid: int | None = None) -> set[int]:
    """Live child processes of ``pid`` (default: this one) running the same command line, i.e. forked from it (a
    DataLoader's workers; a helper started by exec, such as multiprocessing's resource tracker, is left out)."""
    pid = os.getpid() if pid is None else pid
    own = _cmdline(pid)
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # ended meanwhile
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])  # after "pid (comm) state"
        if ppid == pid and _cmdline(int(entry)) == own:
            children.add(int(entry))
    return children


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of process ``pid`` so far, in clock ticks (0 once it has ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))


def wait_idle(pids: list[int], *, still: float = 0.3, timeout: float = 10.0) -> bool:
    """Wait until none of ``pids`` has used CPU for ``still`` seconds (a loader worker with no batch left to load
    waits on its queue); False when ``timeout`` passed first."""
    deadline = time.monotonic() + timeout
    last, since = [cpu_ticks(p) for p in pids], time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = [cpu_ticks(p) for p in pids]
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= still:
            return True
    return False
