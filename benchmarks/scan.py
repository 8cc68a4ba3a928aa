"""Selective-scan speed and memory, every backend side by side with mamba.py's pscan, in one run.

    python benchmarks/scan.py                       # the CPU table of issue 2 (several minutes)
    python benchmarks/scan.py --lengths 4096 --quick # a small table (seconds)
    python benchmarks/scan.py --device cuda --batch 8 --dim 2048 --lengths 2048 8192 65536
    python benchmarks/scan.py --from-csv benchmarks/results/scan_cpu.csv   # the README's table

Each measurement runs in a fresh child process, so that peak memory is that of one call:
on the CPU the growth of the peak resident set over the inputs (VmHWM, reset once the inputs
exist), on CUDA
``torch.cuda.max_memory_allocated`` over the inputs.  Children get an address-space limit of
``--mem-budget-gb`` beyond their inputs, so that a peer that would need more fails with
"out of memory" instead of taking the machine down.

The peer is the pure-PyTorch parallel scan of mamba.py (``mambapy.pscan.pscan``, pip install
mambapy), wrapped in the same discretisation as mamba.py's ``selective_scan`` and fed in its
native (batch, length, dim) layout.  The reference loop runs at the short lengths only.

Achieved bandwidth counts the bytes a scan cannot avoid moving (u, delta, z, B, C read and out
written; for forward+backward also dout read and du, ddelta, dz, dB, dC written), over the
measured time, next to the machine's copy bandwidth measured in the same run.

Results go to ``benchmarks/results/scan_<device>.csv`` (written atomically).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _proc import (available_ram, reset_peak_rss, run_child, status_bytes, vm_bytes,
                   write_csv_atomic)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMPLS = ("torch", "cpu", "triton", "mambapy", "reference")
MODES = ("fwd", "fwd+bwd")


# ----------------------------------------------------------------------------- child side

def _make_inputs(impl, batch, dim, state, length, device, grad):
    """Inputs filled in place (no temporaries, so the resident-set baseline is exact)."""
    import torch

    g = torch.Generator(device=device).manual_seed(0)
    native = impl == "mambapy"  # (batch, length, dim) layout for the peer
    xs = (batch, length, dim) if native else (batch, dim, length)
    bs = (batch, length, state) if native else (batch, state, length)

    def rnd(*shape, scale=1.0, shift=0.0):
        t = torch.empty(*shape, device=device)
        t.normal_(generator=g)
        if scale != 1.0:
            t.mul_(scale)
        if shift:
            t.add_(shift)
        return t.requires_grad_(grad)

    x = dict(u=rnd(*xs), delta=rnd(*xs, shift=-2.0), B=rnd(*bs), C=rnd(*bs), z=rnd(*xs),
             D=rnd(dim))
    # Mamba's initialisation: A = -exp(A_log) with A_log = log(1..N).
    x["A"] = (-torch.arange(1, state + 1, dtype=torch.float32, device=device)
              .repeat(dim, 1)).requires_grad_(grad)
    return x


def _run_once(impl, x, grad):
    from pipelines.scan_timing import run_scan  # one way to call each implementation

    return run_scan(impl, x, grad)


def child(args) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    grad = args.mode == "fwd+bwd"
    cuda = device.type == "cuda"
    x = _make_inputs(args.impl, args.batch, args.dim, args.state, args.length, device, grad)
    out_bytes = x["u"].numel() * 4
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        import resource

        budget = int(args.mem_budget_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + budget, resource.RLIM_INFINITY))
        reset_peak_rss()
        base = status_bytes("VmRSS")
    if cuda:  # compile the Triton kernels / warm the allocator outside the timed calls
        w = _make_inputs(args.impl, args.batch, args.dim, args.state, 256, device, grad)
        with torch.set_grad_enabled(grad):
            _run_once(args.impl, w, grad)
        del w
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    try:
        for _ in range(args.repeats):
            if grad:
                for v in x.values():
                    v.grad = None
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
            t0 = time.perf_counter()
            with torch.set_grad_enabled(grad):
                out = _run_once(args.impl, x, grad)
            if cuda:
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                times.append(time.perf_counter() - t0)
            del out
    except (MemoryError, RuntimeError) as e:  # allocation refused under the budget
        if "memory" not in str(e).lower() and not isinstance(e, MemoryError):
            raise
        return {"status": "out of memory", "detail": str(e).splitlines()[0][:200]}
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = status_bytes("VmHWM") - base
    return {"status": "ok", "time_s": min(times), "peak_bytes": int(peak),
            "out_bytes": out_bytes}


# ----------------------------------------------------------------------------- parent side

def measure(impl, mode, length, a) -> dict:
    return run_child(Path(__file__).resolve(), [
        "--impl", impl, "--mode", mode, "--length", length, "--batch", a.batch, "--dim", a.dim,
        "--state", a.state, "--device", a.device, "--repeats", a.repeats if length <= 16384 else 1,
        "--mem-budget-gb", a.mem_budget_gb, "--threads", a.threads], a.timeout)


def copy_bandwidth(device: str) -> float:
    """Bytes per second of a large tensor copy (read + write), best of a few."""
    import torch

    n = (256 if device == "cpu" else 1024) * 2**20 // 4
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        dst.copy_(src)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n * 4 / best


def min_bytes(mode, batch, dim, state, length) -> int:
    """Bytes a scan must move: fwd reads u, delta, z, B, C and writes out (float32)."""
    x, bc = batch * dim * length * 4, batch * state * length * 4
    fwd = 4 * x + 2 * bc
    return fwd if mode == "fwd" else fwd + 4 * x + 2 * bc + 3 * x  # + dout, recompute; grads


def should_run(impl, mode, length, a) -> str | None:
    """None to run, or why the cell is skipped."""
    if impl == "reference" and length > a.ref_max_length:
        return f"skipped (loop over time; run up to {a.ref_max_length})"
    if impl == "reference" and mode == "fwd+bwd" and length > a.ref_bwd_max_length:
        return f"skipped (loop over time; backward run up to {a.ref_bwd_max_length})"
    if mode == "fwd+bwd" and impl in ("torch", "cpu", "triton"):
        # u, delta, z, out, dout, du, ddelta, dz: eight (batch, dim, length) float32 tensors.
        need = 8 * a.batch * a.dim * length * 4
        room = available_ram() if a.device == "cpu" else _gpu_free_bytes()
        if need > 0.85 * room:
            return (f"skipped (inputs, outputs and gradients alone need {need / 2**30:.0f} GB; "
                    f"{room / 2**30:.0f} GB free)")
    return None


def _gpu_free_bytes() -> int:
    import torch

    return torch.cuda.mem_get_info()[0]


def _fmt_cell(r) -> str:
    if r["status"] != "ok":
        return r["status"].split(" (")[0]
    return f"{r['time_s']:8.3f}s {r['peak_mem_mb']:8.0f}MB"


def report(rows, a, bw) -> list[str]:
    lines = [f"device={a.device} batch={a.batch} dim={a.dim} state={a.state} fp32; "
             f"copy bandwidth {bw / 1e9:.1f} GB/s", ""]
    impls = [i for i in a.impls]
    head = f"{'length':>8} {'mode':>8} | " + " | ".join(f"{i:^24}" for i in impls)
    lines += [head, "-" * len(head)]
    by = {(r["impl"], r["mode"], r["length"]): r for r in rows}
    for L in a.lengths:
        for m in MODES:
            cells = [_fmt_cell(by[(i, m, L)]) if (i, m, L) in by else "-" for i in impls]
            lines.append(f"{L:>8} {m:>8} | " + " | ".join(f"{c:^24}" for c in cells))
    lines.append("")
    for L in a.lengths:
        for m in MODES:
            ours, peer = by.get(("torch", m, L)), by.get(("mambapy", m, L))
            if ours and ours["status"] == "ok":
                gb = f"{ours['gbps']:.2f} GB/s = {100 * ours['bw_fraction']:.1f}% of copy bw"
                if peer and peer["status"] == "ok":
                    mem = peer["peak_mem_mb"] / max(ours["peak_mem_mb"], 1.0)
                    lines.append(f"torch vs mamba.py pscan, L={L} {m}: "
                                 f"{peer['time_s'] / ours['time_s']:.1f}x faster, "
                                 f"1/{mem:.1f} of its peak memory; {gb}")
                else:
                    lines.append(f"torch L={L} {m}: {gb}; mamba.py pscan: "
                                 f"{peer['status'] if peer else 'not run'}")
    for fast in ("cpu", "triton"):  # the fused kernels against the torch backend
        for L in a.lengths:
            for m in MODES:
                ours, old = by.get((fast, m, L)), by.get(("torch", m, L))
                if ours and old and ours["status"] == old["status"] == "ok":
                    lines.append(f"{fast} vs torch, L={L} {m}: "
                                 f"{old['time_s'] / ours['time_s']:.1f}x faster, "
                                 f"{ours['peak_mem_mb'] / max(old['peak_mem_mb'], 1.0):.2f} of "
                                 f"its peak memory; {ours['gbps']:.1f} GB/s = "
                                 f"{100 * ours['bw_fraction']:.1f}% of copy bw")
    for impl in ("torch", "cpu", "triton"):
        fwd_long = by.get((impl, "fwd", max(a.lengths)))
        if fwd_long and fwd_long["status"] == "ok":
            lines.append(f"{impl} forward at L={max(a.lengths)}: peak memory beyond inputs and "
                         f"outputs {fwd_long['extra_mb'] / 1024:.2f} GB")
    return lines


def report_from_csv(path: Path) -> list[str]:
    """The report of an earlier run, rebuilt from its CSV (the README's table comes from here)."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("batch", "dim", "state", "length"):
            r[k] = int(r[k])
        if r["status"] == "ok":
            for k in ("time_s", "peak_mem_mb", "gbps", "bw_fraction"):
                r[k] = float(r[k])
            out_mb = r["batch"] * r["dim"] * r["length"] * 4 / 2**20
            r["extra_mb"] = r["peak_mem_mb"] - out_mb
    r0 = rows[0]
    a = argparse.Namespace(device=r0["device"], batch=r0["batch"], dim=r0["dim"], state=r0["state"],
                           lengths=sorted({r["length"] for r in rows}),
                           impls=list(dict.fromkeys(r["impl"] for r in rows)))
    ok = next(r for r in rows if r["status"] == "ok")
    return report(rows, a, ok["gbps"] * 1e9 / ok["bw_fraction"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+",
                   default=[4096, 16384, 65536, 262144, 1048576])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--state", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--impls", nargs="+", default=None, help="default: all that can run here")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--mem-budget-gb", type=float, default=None,
                   help="memory a child may take beyond its inputs (default: 70%% of free RAM)")
    p.add_argument("--ref-max-length", type=int, default=4096)
    p.add_argument("--ref-bwd-max-length", type=int, default=4096)
    p.add_argument("--timeout", type=float, default=1200.0)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    p.add_argument("--from-csv", type=Path, default=None,
                   help="print the report of an earlier run from its CSV, measuring nothing")
    # child-only arguments
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.child:
        print(json.dumps(child(a)))
        return 0
    if a.from_csv:
        print("\n".join(report_from_csv(a.from_csv)))
        return 0

    if a.mem_budget_gb is None:
        avail = available_ram()
        a.mem_budget_gb = round(0.7 * avail / 2**30, 1)
    if a.quick:
        a.lengths = a.lengths if a.lengths != p.get_default("lengths") else [1024, 4096]
        a.dim, a.repeats = min(a.dim, 128), 1
    if a.impls is None:
        a.impls = [i for i in IMPLS if _impl_available(i, a.device)]
    sys.path.insert(0, str(ROOT))
    bw = copy_bandwidth(a.device)
    rows = []
    for L in a.lengths:
        for m in MODES:
            for impl in a.impls:
                base = dict(device=a.device, impl=impl, mode=m, batch=a.batch, dim=a.dim,
                            state=a.state, length=L)
                why = should_run(impl, m, L, a)
                r = {"status": why} if why else measure(impl, m, L, a)
                row = {**base, **r}
                if r.get("status") == "ok":
                    row["peak_mem_mb"] = r["peak_bytes"] / 2**20
                    row["extra_mb"] = (r["peak_bytes"] - r["out_bytes"]) / 2**20
                    moved = min_bytes(m, a.batch, a.dim, a.state, L)
                    row["gbps"] = moved / r["time_s"] / 1e9
                    row["bw_fraction"] = moved / r["time_s"] / bw
                print(f"  {impl:>9} {m:>7} L={L:>8}: " + (_fmt_cell(row) if row["status"] == "ok"
                      else row["status"] + (f" [{r.get('detail')}]" if r.get("detail") else "")),
                      flush=True)
                rows.append(row)
    suffix = "_quick" if a.quick else ""  # a smoke run never overwrites the recorded table
    out = a.out or HERE / "results" / f"scan_{a.device.split(':')[0]}{suffix}.csv"
    write_csv_atomic(rows, out, ["device", "impl", "mode", "batch", "dim", "state", "length", "status",
                                 "time_s", "peak_mem_mb", "gbps", "bw_fraction", "detail"])
    print("\n".join(report(rows, a, bw)))
    print(f"\nwrote {out}")
    return 0


def _impl_available(impl, device) -> bool:
    if impl == "mambapy":
        import importlib.util

        return importlib.util.find_spec("mambapy") is not None
    if impl == "triton":
        sys.path.insert(0, str(ROOT))
        import torch

        from seqmamba_kernels import available_backends

        return device != "cpu" and available_backends(torch.device(device))["triton"] is None
    if impl == "cpu":
        sys.path.insert(0, str(ROOT))
        import torch

        from seqmamba_kernels import available_backends

        return available_backends(torch.device(device))["cpu"] is None
    return True


if __name__ == "__main__":
    sys.exit(main())
