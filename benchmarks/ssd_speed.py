"""The Mamba-2 scan (SSD, chunked matmul form) against the Mamba-1 selective scan (fused C
kernel) on the CPU, at equal d_inner, and against the machine's GEMM roofline.

    python benchmarks/ssd_speed.py                 # about 10 minutes on 2 cores
    python benchmarks/ssd_speed.py --quick

Both scans see d_inner = 256 channels, batch 1: Mamba-1 as 256 channels each with its own
``state`` states (``selective_scan``, backend "cpu"); Mamba-2 as 4 heads of 64 channels sharing
one B/C group (``ssd_scan``, chunk 64), and at state 64 also with the within-chunk product in
its direct form (``mamba2_direct``: the old path, side by side).  Forward alone and forward +
backward (the gradient of the sum of the outputs, every input requiring grad), the best of 3
after a warm-up.

GFLOP/s of the SSD rows counts the matmul work of the chunked form only (C B^T, the masked
product with x, the chunk states and their read-out: 2 (g Q n + h (Q p + 2 p n)) per token
forward); the roofline is the best float32 GEMM rate torch reaches on this machine (square
matmuls of 512-2048).  Writes ``benchmarks/results/ssd_speed.csv``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from seqmamba.atomic import write_csv_atomic  # noqa: E402
from seqmamba_kernels import selective_scan, ssd, ssd_scan  # noqa: E402

D_INNER, HEAD_DIM, CHUNK = 256, 64, 64


def best_of(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def gemm_roofline() -> float:
    """Best float32 GFLOP/s of square matmuls on this machine's torch threads."""
    best = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        best = max(best, 2 * n ** 3 / best_of(lambda: a @ b) / 1e9)
    return best


def mamba1(length: int, state: int, backward: bool):
    g = lambda *s: torch.randn(*s, requires_grad=backward)  # noqa: E731
    u, delta, B, C = g(1, D_INNER, length), g(1, D_INNER, length), g(1, state, length), \
        g(1, state, length)
    A = (-torch.rand(D_INNER, state)).requires_grad_(backward)

    def run():
        y = selective_scan(u, delta, A, B, C, delta_softplus=True, backend="cpu")
        if backward:
            y.sum().backward()
    return run


def mamba2(length: int, state: int, backward: bool, direct: bool = False):
    """``direct``: the within-chunk product in its direct form (a decay matrix per head) for
    every slice, the form the factored one replaced.  The decays span the ranges a fresh
    Mamba-2 layer draws from (``seqmamba/mixer2.py``): the heads' A from -1 to -16 and their
    time steps from 0.001 to 0.1 (log-spaced, through the dt bias), paired slowest with
    slowest.  The fastest head's chunks span more than FACTORED_SPAN, so in the product they
    take the direct form: a head in four, the worst the initialisation gives."""
    h = D_INNER // HEAD_DIM
    gen = torch.Generator().manual_seed(0)
    g = lambda *s: torch.randn(*s, generator=gen).requires_grad_(backward)  # noqa: E731
    x, B, C = g(1, length, h, HEAD_DIM), g(1, length, 1, state), g(1, length, 1, state)
    dt = (0.5 * torch.randn(1, length, h, generator=gen)).requires_grad_(backward)
    step = torch.logspace(-3, -1, h)
    dt_bias = (step + torch.log(-torch.expm1(-step))).requires_grad_(backward)  # softplus^-1
    A = (-torch.linspace(1, 16, h)).requires_grad_(backward)

    def run():
        span, ssd.FACTORED_SPAN = ssd.FACTORED_SPAN, -1.0 if direct else ssd.FACTORED_SPAN
        try:
            y = ssd_scan(x, dt, A, B, C, dt_bias=dt_bias, dt_softplus=True,
                         chunk_size=CHUNK)
            if backward:
                y.sum().backward()
        finally:
            ssd.FACTORED_SPAN = span
    return run


KERNELS = [("mamba1", mamba1, (16, 64)), ("mamba2", mamba2, (16, 64, 128)),
           ("mamba2_direct", lambda *a: mamba2(*a, direct=True), (64,))]


def ssd_flops(length: int, state: int) -> float:
    h = D_INNER // HEAD_DIM
    return 2.0 * length * (CHUNK * state + h * (CHUNK * HEAD_DIM + 2 * HEAD_DIM * state))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=HERE / "results" / "ssd_speed.csv")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    lengths = [1 << 12, 1 << 14] if a.quick else [1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20]
    roof = gemm_roofline()
    print(f"GEMM roofline: {roof:.1f} GFLOP/s on {a.threads} threads", flush=True)
    rows = []
    for length in lengths:
        for backward in (False, True):
            if backward and length > 1 << 18:
                continue  # autograd keeps the chunk masks: forward only at 2^20
            for kernel, make, states in KERNELS:
                for state in states:
                    sec = best_of(make(length, state, backward), 1 if length > 1 << 16 else 3)
                    row = {"kernel": kernel, "state": state, "length": length,
                           "pass": "fwd+bwd" if backward else "fwd", "seconds": sec,
                           "tokens_per_s": length / sec, "threads": a.threads,
                           "gemm_roofline_gflops": roof, "gflops": ""}
                    if kernel != "mamba1" and not backward:
                        row["gflops"] = ssd_flops(length, state) / sec / 1e9
                    rows.append(row)
                    print(row, flush=True)
                    write_csv_atomic(rows, a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
