"""The Mamba-2 scan (SSD) timed on a GPU: the Triton kernels (fp32 and bf16) against the
chunked torch path (fp32), forward and forward + backward, tokens/s and peak memory.

    python benchmarks/gpu_ssd.py --out $OUT            # on a GPU (gpu_check.sh's sweep stage)
    python benchmarks/gpu_ssd.py --dry-run --out /tmp/ssd   # tiny sizes on the CPU

Shape: batch 4, 32 heads x head_dim 64 (d_inner 2048), 1 group, state 128, chunk 64 (the
default), lengths 2^11..2^16; dt through a bias and softplus, D per head, a z gate, as a
Mamba-2 layer calls it.  Writes ssd_sweep.csv under --out, one row per measurement as it
comes: impl, dtype, mode, length, status, time_s (median), tokens_s, peak_gb (the most memory
allocated during the call, inputs included), vs_torch (the torch fp32 time / this time).
Measurements stop starting once --budget seconds are spent (a row says so), and a failure or
out-of-memory is a row's status, not the end of the run.  --dry-run sets TRITON_INTERPRET=1
and shrinks every size, so a typo fails here, not on a lease.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if "--dry-run" in sys.argv:  # before triton is imported: its kernels then run on the CPU
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
from gpu_scan_sweep import Table, attempt, timed  # noqa: E402
from seqmamba_kernels import ssd_scan  # noqa: E402

FULL = dict(batch=4, heads=32, head_dim=64, groups=1, state=128, chunk=64,
            lengths=[1 << k for k in range(11, 17)], reps=3)
DRY = dict(batch=1, heads=2, head_dim=4, groups=1, state=8, chunk=16, lengths=[40, 70], reps=1)
FIELDS = ["impl", "dtype", "mode", "batch", "heads", "head_dim", "state", "chunk", "length",
          "status", "time_s", "reps", "tokens_s", "peak_gb", "vs_torch", "device"]
# (impl, dtype): the torch path in fp32 is the baseline every triton row is compared with
IMPLS = (("torch", torch.float32), ("triton", torch.float32), ("triton", torch.bfloat16))


def ssd_inputs(sz: dict, length: int, dtype, device, grad: bool) -> dict:
    """x, z, B, C in ``dtype``; dt raw (softplus and the bias give the time step); A, D and
    the bias float32, as a Mamba-2 layer keeps its parameters."""
    g = torch.Generator(device=device).manual_seed(0)
    b, h, p, G, n = (sz[k] for k in ("batch", "heads", "head_dim", "groups", "state"))

    def rnd(*shape, dt=dtype, scale=1.0, shift=0.0):
        t = torch.randn(*shape, generator=g, device=device).mul_(scale).add_(shift).to(dt)
        return t.requires_grad_(grad)

    return dict(x=rnd(b, length, h, p), dt=rnd(b, length, h, scale=0.5, shift=-1.5),
                A=(-torch.linspace(1, 16, h, device=device)).requires_grad_(grad),
                B=rnd(b, length, G, n), C=rnd(b, length, G, n), D=rnd(h, dt=torch.float32),
                z=rnd(b, length, h, p), dt_bias=rnd(h, dt=torch.float32, scale=0.5))


def ssd_call(impl: str, x: dict, chunk: int, grad: bool):
    def call():
        return ssd_scan(**x, dt_softplus=True, chunk_size=chunk, backend=impl)
    if not grad:
        def run():
            with torch.no_grad():
                call()
        return run
    leaves = list(x.values())
    gy = torch.randn_like(x["x"])

    def run_grad():
        torch.autograd.grad(call(), leaves, gy)
    return run_grad


def measure(impl, dtype, mode, length, sz, device) -> dict:
    x = ssd_inputs(sz, length, dtype, device, mode != "fwd")
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t, reps = timed(ssd_call(impl, x, sz["chunk"], mode != "fwd"), device, sz["reps"],
                    warmup_counts=impl == "torch")
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else ""
    return dict(time_s=t, reps=reps, tokens_s=sz["batch"] * length / t, peak_gb=peak)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=os.environ.get("OUT"),
                   help="folder for ssd_sweep.csv (default: $OUT)")
    p.add_argument("--budget", type=float, default=60.0,
                   help="seconds after which no measurement starts")
    p.add_argument("--dry-run", action="store_true",
                   help="tiny sizes on the CPU under TRITON_INTERPRET=1 (a check of the script)")
    a = p.parse_args(argv)
    if a.out is None:
        p.error("give --out (or set $OUT)")
    a.out.mkdir(parents=True, exist_ok=True)
    if a.dry_run:
        device, sz, name = torch.device("cpu"), DRY, "cpu dry run"
    elif torch.cuda.is_available():
        device, sz, name = torch.device("cuda"), FULL, torch.cuda.get_device_name(0)
    else:
        p.error("no CUDA device: run on a GPU, or with --dry-run")
    table = Table(a.out / "ssd_sweep.csv", FIELDS)
    deadline = time.perf_counter() + a.budget
    t0 = time.perf_counter()
    for length in sz["lengths"]:
        for mode in ("fwd", "fwd+bwd"):
            torch_s = None
            for impl, dtype in IMPLS:
                row = dict(impl=impl, dtype=str(dtype).removeprefix("torch."), mode=mode,
                           length=length, device=name,
                           **{k: sz[k] for k in ("batch", "heads", "head_dim", "state",
                                                 "chunk")})
                row.update(attempt(lambda: measure(impl, dtype, mode, length, sz, device),
                                   deadline))
                if row["status"] == "ok":
                    if impl == "torch":
                        torch_s = row["time_s"]
                    elif torch_s:
                        row["vs_torch"] = torch_s / row["time_s"]
                table.add(row)
    print(f"[ssd] {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
