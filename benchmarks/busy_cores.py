"""Training speed when another process keeps a core busy, by torch thread count.

    python benchmarks/busy_cores.py          # -> benchmarks/results/busy_cores.csv

A shared machine's cores are often busy.  torch's intra-op threads wait for each other at the
end of every parallel op, so when the OS deschedules one of them for another process, every
op waits for it.  This measures forward + backward steps per second of a small bidirectional
DNA token model (d_model 64, 2 layers, batch 4 x 2048 bases) with 1..N threads, on idle cores
and with a busy-looping process on one core, all in one run, and reports each speed as a ratio
to the idle machine with all threads.  ``seqmamba --threads N`` (or ``SEQMAMBA_THREADS``)
sets the thread count of any command.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from seqmamba import MambaConfig, MambaForTokenClassification  # noqa: E402
from seqmamba.atomic import write_csv_atomic  # noqa: E402


def spin(stop) -> None:
    """A busy loop on one core until ``stop`` is set (another user's job)."""
    x = 0
    while not stop.is_set():
        for _ in range(100000):
            x += 1


@contextlib.contextmanager
def cores_busy(busy: bool):
    """With ``busy``, a busy-looping process on one core for the duration (else nothing)."""
    stop, proc = mp.Event(), None
    if busy:
        proc = mp.Process(target=spin, args=(stop,), daemon=True)
        proc.start()
    try:
        yield
    finally:
        if proc is not None:
            stop.set()
            proc.join()


def steps_per_second(threads: int, seconds: float) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = MambaForTokenClassification(MambaConfig(d_model=64, n_layer=2, vocab_size=16,
                                                    num_labels=4, bidirectional="add"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 4, (4, 2048))
    y = torch.randint(0, 4, (4, 2048))

    def step():
        opt.zero_grad()
        model(x, labels=y).loss.backward()
        opt.step()

    step()  # warm-up (kernel build, allocator)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    p.add_argument("--out", type=Path, default=HERE / "results" / "busy_cores.csv")
    a = p.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    rows = []
    for busy in (False, True):
        with cores_busy(busy):
            for threads in range(cores, 0, -1):
                sps = steps_per_second(threads, a.seconds)
                rows.append({"cores": cores, "busy_cores": int(busy), "threads": threads,
                             "steps_per_s": round(sps, 3)})
                print(rows[-1], flush=True)
    ref = rows[0]["steps_per_s"]
    for r in rows:
        r["vs_idle_all_threads"] = round(r["steps_per_s"] / ref, 3)
    write_csv_atomic(rows, a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
