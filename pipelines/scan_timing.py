"""A small, in-process timing of the selective scan: every backend usable here beside mamba.py's
pscan (when ``mambapy`` is installed), forward and forward+backward.  ``seqmamba demo`` ends
with it; the full speed and memory benchmark (fresh processes, peak memory, bandwidth) is
``benchmarks/scan.py``, which shares the peer's wrapper from here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List

import torch

MODES = ("fwd", "fwd+bwd")
REFERENCE_MAX_LENGTH = 4096  # the float64-style Python loop is too slow beyond this
FIELDS = ["device", "impl", "mode", "batch", "dim", "state", "length", "status", "time_s"]


def mambapy_scan(u, delta, A, B, C, D, z):
    """mamba.py's selective scan through its ``pscan``, on its native layout: u, delta, z
    (batch, length, dim), B, C (batch, length, state), A (dim, state), D (dim,) -> y (batch,
    length, dim), with the same softplus discretisation and gate as ``selective_scan``."""
    import torch.nn.functional as F
    from mambapy.pscan import pscan

    dt = F.softplus(delta)
    deltaA = torch.exp(dt.unsqueeze(-1) * A)  # (batch, length, dim, state)
    BX = (dt * u).unsqueeze(-1) * B.unsqueeze(2)  # (batch, length, dim, state)
    hs = pscan(deltaA, BX)
    y = (hs @ C.unsqueeze(-1)).squeeze(3) + D * u
    return y * F.silu(z)


def _inputs(native: bool, batch: int, dim: int, state: int, length: int, device, grad: bool):
    """Random inputs: (batch, dim, length) for seqmamba, (batch, length, dim) with ``native``
    (mamba.py's layout); A as Mamba initialises it, -(1..state) per channel."""
    g = torch.Generator(device=device).manual_seed(0)
    xs = (batch, length, dim) if native else (batch, dim, length)
    bs = (batch, length, state) if native else (batch, state, length)

    def rnd(*shape, shift=0.0):
        return (torch.randn(*shape, generator=g, device=device) + shift).requires_grad_(grad)

    A = (-torch.arange(1, state + 1, dtype=torch.float32, device=device).repeat(dim, 1))
    return dict(u=rnd(*xs), delta=rnd(*xs, shift=-2.0), A=A.requires_grad_(grad), B=rnd(*bs),
                C=rnd(*bs), D=rnd(dim), z=rnd(*xs))


def run_scan(impl: str, x: dict, grad: bool) -> torch.Tensor:
    """One scan of ``impl`` (a backend name, or "mambapy") on inputs ``x`` (``_inputs``'s
    layout for it), and its backward with ``grad``; waits for a GPU to finish.  -> out."""
    from seqmamba_kernels import selective_scan

    if impl == "mambapy":
        out = mambapy_scan(**x)
    else:
        out = selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], D=x["D"], z=x["z"],
                             delta_softplus=True, backend=impl)
    if grad:
        out.backward(torch.ones_like(out))
    if out.is_cuda:
        torch.cuda.synchronize()
    return out


def implementations(device: str) -> List[str]:
    """The backends usable on ``device`` (Triton only on a GPU: its CPU interpreter is for
    tests), then mamba.py's pscan when installed, then the reference loop."""
    from seqmamba_kernels import available_backends

    ours = [n for n, why in available_backends(torch.device(device)).items()
            if why is None and n != "reference" and (n != "triton" or device == "cuda")]
    import importlib.util

    peer = ["mambapy"] if importlib.util.find_spec("mambapy") is not None else []
    return ours + peer + ["reference"]


def time_scans(lengths, dim: int = 256, state: int = 16, batch: int = 1, device: str = "cpu",
               repeats: int = 2) -> List[dict]:
    """The best of ``repeats`` wall times of each implementation, length and mode -> rows with
    the keys of ``FIELDS`` (status "ok", or why it did not run)."""
    rows = []
    for length in lengths:
        for mode in MODES:
            grad = mode == "fwd+bwd"
            for impl in implementations(device):
                row = dict(device=device, impl=impl, mode=mode, batch=batch, dim=dim,
                           state=state, length=length, status="ok", time_s="")
                if impl == "reference" and length > REFERENCE_MAX_LENGTH:
                    row["status"] = f"skipped (the reference loop above L={REFERENCE_MAX_LENGTH})"
                    rows.append(row)
                    continue
                x = _inputs(impl == "mambapy", batch, dim, state, length, device, grad)
                best = float("inf")
                try:
                    run_scan(impl, x, grad)  # warm-up: a kernel's first call builds or compiles it
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        run_scan(impl, x, grad)
                        best = min(best, time.perf_counter() - t0)
                    row["time_s"] = best
                except (RuntimeError, MemoryError) as e:
                    row["status"] = f"failed ({str(e).splitlines()[0][:80]})"
                rows.append(row)
    return rows


def report(rows: List[dict]) -> List[str]:
    """A table of times, and each fast path as a ratio against the torch path and the peer."""
    by: Dict[tuple, dict] = {(r["impl"], r["mode"], r["length"]): r for r in rows}
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    head = f"{'length':>8} {'mode':>8} | " + " | ".join(f"{i:>10}" for i in impls)
    lines = [head, "-" * len(head)]
    for length in dict.fromkeys(r["length"] for r in rows):
        for mode in MODES:
            cells = []
            for i in impls:
                r = by.get((i, mode, length))
                cells.append(f"{r['time_s']:9.4f}s" if r and r["status"] == "ok" else "-")
            lines.append(f"{length:>8} {mode:>8} | " + " | ".join(f"{c:>10}" for c in cells))
    for (impl, mode, length), r in by.items():
        for base, name in (("mambapy", "mamba.py pscan"), ("torch", "torch")):
            b = by.get((base, mode, length))
            if impl != base and impl in ("torch", "cpu", "triton") and r["status"] == "ok" \
                    and b and b["status"] == "ok" and (base == "mambapy" or impl != "torch"):
                ratio = b["time_s"] / r["time_s"]
                pace = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
                lines.append(f"{impl} vs {name}, L={length} {mode}: {pace}")
    return lines


def write_csv(rows: List[dict], out: Path) -> Path:
    from seqmamba.atomic import write_csv_atomic

    write_csv_atomic(rows, out, FIELDS)
    return out
