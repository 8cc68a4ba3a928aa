"""The cores other processes leave free: ``seqmamba --threads auto``.

Why: torch's threads wait for each other at the end of every op, so when another job keeps a
core busy, one thread per core runs at the pace of the slowest and loses to fewer threads
(``benchmarks/busy_cores.py``: with one of two cores busy, one thread does 1.6 times the work
of two).  ``auto`` measures the machine's idle time for a moment before the command starts and
uses no more threads than there are idle cores.  It is not the default: the thread count
changes how sums round, and a run's weights and tables should not depend on what else the
machine was doing unless the user asked for that.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional, Tuple

PROC_STAT = Path("/proc/stat")


def cpu_times(stat_text: str) -> Tuple[int, int]:
    """The aggregate ``cpu`` line of /proc/stat -> (idle jiffies incl. iowait, all jiffies)."""
    for line in stat_text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
            # already inside user/nice, so only the first eight fields are summed
            values = [int(v) for v in parts[1:9]]
            return values[3] + values[4], sum(values)
    raise ValueError("no aggregate cpu line")


def idle_cores(before: Tuple[int, int], after: Tuple[int, int], cores: int) -> float:
    """Idle cores between two ``cpu_times`` snapshots of a machine with ``cores`` cores."""
    d_idle, d_total = after[0] - before[0], after[1] - before[1]
    if d_total <= 0:
        return float(cores)
    return cores * min(1.0, max(0.0, d_idle / d_total))


def free_cores(cores: int, interval: float = 0.2, stat: Path = PROC_STAT) -> Optional[float]:
    """Idle cores over the next ``interval`` seconds (this process sleeps meanwhile, so it is
    the other processes' load), or None where /proc/stat cannot be read (not Linux)."""
    try:
        before = cpu_times(stat.read_text())
        time.sleep(interval)
        after = cpu_times(stat.read_text())
    except (OSError, ValueError):
        return None
    return idle_cores(before, after, cores)


def lowered_threads(default: int, free: Optional[float]) -> int:
    """torch's ``default`` thread count, lowered to the idle cores (rounded, at least 1)."""
    if free is None:
        return default
    return max(1, min(default, int(free + 0.5)))


def threads_requested(option: Optional[str]) -> Optional[int]:
    """Torch threads for ``--threads N|auto`` (else SEQMAMBA_THREADS; None: torch's default);
    ``auto`` counts the idle cores.  A bad value is one InputError naming where it came from."""
    from .errors import InputError

    value, where = (option, "--threads") if option is not None else \
        (os.environ.get("SEQMAMBA_THREADS") or None, "SEQMAMBA_THREADS")
    if value is None:
        return None
    if value == "auto":
        return threads_for_idle_cores()
    try:
        n = int(value)
        if n < 1:
            raise ValueError
    except ValueError:
        raise InputError(f"{where} takes a positive number of threads or 'auto', got "
                         f"{value!r}") from None
    return n


def threads_for_idle_cores() -> int:
    """``--threads auto``: torch's default thread count, lowered to the cores other processes
    leave idle (measured over 0.2 s; pipelines.cores), said in one line when lowered."""
    import torch

    default = torch.get_num_threads()
    cores = os.cpu_count() or default
    free = free_cores(cores)
    n = lowered_threads(default, free)
    if n < default:
        print(f"seqmamba: other processes keep {cores - free:.1f} of {cores} cores busy; "
              f"running with {n} thread{'s' if n > 1 else ''}, not {default}", file=sys.stderr)
    return n
