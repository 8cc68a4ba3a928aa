"""The Triton scan timed on a GPU, each timing beside its floor: tile configs against the torch
backend, the one-step kernel generating from an LM, and a bf16-mixed training step.

    python benchmarks/gpu_scan_sweep.py --out $OUT          # on a GPU (gpu_check.sh runs this)
    python benchmarks/gpu_scan_sweep.py --dry-run --out /tmp/sweep   # tiny sizes on the CPU

Sections (--sections), one CSV each under --out (default: $OUT):
  scan   scan_sweep.csv.  Screen: every triton_scan.CANDIDATE_TILES config at batch 8, dim
         2048, state 16, L 8k, fp32 and bf16, fwd and fwd+bwd.  Then on every standard shape
         (batch 8, dim 2048, L 2k..64k; batch 1, dim 512, L 64k..1M): the torch backend
         (fp32), the default tiles, and the screen's best config per mode and dtype.
         floor_frac = floor time (gpu_floor.py, at the measured copy bandwidth) / time;
         bw_frac = the bytes that config moves (B/C re-reads included) / time / copy bandwidth;
         vs_torch = torch's fp32 time / this time.
  step   step_tokens.csv: tokens/s of a 24-layer d_model 768 LM generating greedily through
         seqmamba.stepper (the one-step Triton kernel in every layer) at batch 1..64, eager
         and as one CUDA-graph replay per token; floor_tokens_s reads every weight and state
         once per token at the copy bandwidth.
  train  train_step.csv: one AdamW step of a DNA LM (d_model 256, 8 layers) under bf16
         autocast (what Lightning's "bf16-mixed" runs) at 2^16 and 2^20 tokens: tokens/s and
         peak memory; then doubling the length until it no longer fits.
Each section stops starting measurements when its budget (--budget) is spent and says so in
a row, and rows are written as they come: a run cut short still leaves its tables.
--dry-run sets TRITON_INTERPRET=1 and shrinks every size, so a typo fails here, not on a lease.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

if "--dry-run" in sys.argv:  # before triton is imported: its kernels then run on the CPU
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
from gpu_floor import Shape, device_for, floor, scan_bytes  # noqa: E402
from seqmamba_kernels import selective_scan  # noqa: E402
from seqmamba_kernels._checks import check_scan_args  # noqa: E402

FULL = dict(screen=(8, 2048, 16, 8192),
            shapes=[(8, 2048, 16, 1 << k) for k in (11, 13, 15, 16)]
            + [(1, 512, 16, 1 << k) for k in (16, 18, 20)],
            lm=dict(d_model=768, n_layer=24, vocab_size=50277), batches=(1, 4, 16, 64),
            steps=100, train=dict(d_model=256, n_layer=8, vocab_size=16),
            train_tokens=(1 << 16, 1 << 20), fit_max=1 << 24, reps=3)
DRY = dict(screen=(1, 8, 4, 40), shapes=[(1, 8, 4, 40), (1, 4, 4, 70)],
           lm=dict(d_model=16, n_layer=2, vocab_size=16, d_state=4), batches=(1, 2), steps=3,
           train=dict(d_model=8, n_layer=2, vocab_size=16, d_state=4), train_tokens=(32, 64),
           fit_max=128, reps=1)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
SCAN_FIELDS = ["phase", "impl", "config", "dtype", "mode", "batch", "dim", "state", "length",
               "status", "time_s", "reps", "floor_s", "bound", "floor_frac", "config_bytes",
               "bw_frac", "vs_torch", "device", "copy_bw"]
STEP_FIELDS = ["mode", "batch", "n_layer", "d_model", "dtype", "status", "tokens_s",
               "ms_per_step", "floor_tokens_s", "device"]
TRAIN_FIELDS = ["phase", "batch", "length", "tokens", "status", "step_s", "tokens_s",
                "peak_gb", "device"]


class Table:
    """A CSV written row by row (flushed), each row echoed in one line."""

    def __init__(self, path: Path, fields):
        self.f = open(path, "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=fields, extrasaction="ignore")
        self.w.writeheader()
        self.rows = []

    def add(self, row: dict) -> dict:
        self.rows.append(row)
        self.w.writerow(row)
        self.f.flush()
        print(" ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k not in ("device",)),
              flush=True)
        return row


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def timed(fn, device, reps: int, min_s: float = 1.0,
          warmup_counts: bool = False) -> tuple[float, int]:
    """Median seconds of ``fn`` after one warm-up call (compilation, allocator): at least
    ``reps`` calls, or one once a call takes ``min_s`` (the torch backend at 64k takes ~9 s).
    ``warmup_counts``: nothing to compile, so a warm-up that took ``min_s`` is the timing."""
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    if warmup_counts and time.perf_counter() - t0 >= min_s:
        return time.perf_counter() - t0, 1
    times = []
    while len(times) < reps and not (times and sum(times) >= min_s):
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def attempt(fn, deadline: float) -> dict:
    """Run ``fn`` -> dict, turning the deadline, out-of-memory and errors into a status."""
    if time.perf_counter() >= deadline:
        return {"status": "skipped (budget)"}
    try:
        return {"status": "ok", **fn()}
    except torch.cuda.OutOfMemoryError:
        return {"status": "oom"}
    except Exception as e:  # noqa: BLE001  (one failed cell must not end the lease's run)
        traceback.print_exc()
        return {"status": f"error: {type(e).__name__}: {str(e)[:160]}"}
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def copy_bandwidth(device) -> float:
    """Bytes/s of a large device copy, read plus write, best of five."""
    src = torch.randn((1 << 28) if device.type == "cuda" else (1 << 22), device=device)
    dst = torch.empty_like(src)
    best = min(timed(lambda: dst.copy_(src), device, 1)[0] for _ in range(5))
    return 2 * src.numel() * 4 / best


# ----------------------------------------------------------------------------- scan section

def scan_inputs(batch, dim, state, length, dtype, device, grad: bool) -> dict:
    """Random inputs as a Mamba layer passes them (never zeros): u, delta, z, B, C in ``dtype``;
    A = -(1..state), D and the dt bias float32."""
    g = torch.Generator(device=device).manual_seed(0)

    def rnd(*shape, dt=dtype, scale=1.0, shift=0.0):
        t = torch.randn(*shape, generator=g, device=device).mul_(scale).add_(shift).to(dt)
        return t.requires_grad_(grad)

    x = dict(u=rnd(batch, dim, length), delta=rnd(batch, dim, length, scale=0.5, shift=-1.5),
             A=(-torch.arange(1, state + 1, device=device, dtype=torch.float32)
                .repeat(dim, 1)).requires_grad_(grad),
             B=rnd(batch, state, length), C=rnd(batch, state, length),
             D=rnd(dim, dt=torch.float32), z=rnd(batch, dim, length),
             bias=rnd(dim, dt=torch.float32, scale=0.5))
    return x


def scan_call(impl: str, tiles, x: dict, grad: bool):
    names = ("u", "delta", "A", "B", "C", "D", "z", "bias")
    args = [x[k] for k in names]
    if impl == "torch":
        def call():
            return selective_scan(*args[:5], D=args[5], z=args[6], delta_bias=args[7],
                                  delta_softplus=True, backend="torch")
    else:
        from seqmamba_kernels.triton_scan import selective_scan_triton

        shapes = check_scan_args(*args, None)

        def call():
            return selective_scan_triton(*args, True, None, shapes, tiles)[0]
    if not grad:
        def run():
            with torch.no_grad():
                call()
        return run
    g_out = torch.randn_like(x["u"])

    def run_grad():
        torch.autograd.grad(call(), args, g_out)
    return run_grad


def _tile_name(t) -> str:
    rev = {None: "", True: "-flip", False: "-rev"}[t.reverse_via_flip]
    return f"BD{t.block_d}-BL{t.block_l}-W{t.num_warps}{rev}"


def scan_section(a, sizes, device, dev, bw, out: Path, deadline: float):
    from seqmamba_kernels.triton_scan import CANDIDATE_TILES, DEFAULT_TILES

    table = Table(out / "scan_sweep.csv", SCAN_FIELDS)
    common = dict(device=dev.name, copy_bw=round(bw / 1e9, 1))
    modes = ("fwd", "fwd+bwd")
    cands = CANDIDATE_TILES[:2] if a.dry_run else CANDIDATE_TILES

    def cell(phase, impl, tiles, dtype, mode, shape, x, torch_s=None):
        b, d, n, L = shape
        s = Shape(b, d, n, L, dtype)
        fl = floor(mode, s, dev)
        row = dict(phase=phase, impl=impl, config=_tile_name(tiles) if tiles else "",
                   dtype=dtype, mode=mode, batch=b, dim=d, state=n, length=L, **common)
        r = attempt(lambda: dict(zip(("time_s", "reps"), timed(
            scan_call(impl, tiles, x, mode != "fwd"), device, sizes["reps"],
            warmup_counts=impl == "torch"))), deadline)
        row.update(r, floor_s=fl.seconds, bound=fl.bound)
        if r["status"] == "ok":
            t = r["time_s"]
            row["floor_frac"] = fl.seconds / t
            if tiles:
                nb = scan_bytes(mode, s, min(tiles.block_d, d),
                                min(tiles.block_l, max(16, 1 << (L - 1).bit_length())))
                row.update(config_bytes=nb, bw_frac=nb / t / bw)
            if torch_s:
                row["vs_torch"] = torch_s / t
        return table.add(row)

    best = {}  # (mode, dtype) -> (time, tiles)
    for dtype in DTYPES:
        for mode in modes:
            x = scan_inputs(*sizes["screen"], DTYPES[dtype], device, mode != "fwd")
            for tiles in cands:
                r = cell("screen", "triton", tiles, dtype, mode, sizes["screen"], x)
                if r["status"] == "ok" and r["time_s"] < best.get((mode, dtype), (1e30,))[0]:
                    best[(mode, dtype)] = (r["time_s"], tiles)
            del x
    for shape in sizes["shapes"]:
        for mode in modes:
            x = scan_inputs(*shape, torch.float32, device, mode != "fwd")
            ref = cell("shapes", "torch", None, "fp32", mode, shape, x)
            torch_s = ref.get("time_s") if ref["status"] == "ok" else None
            winner = best.get((mode, "fp32"), (0, DEFAULT_TILES))[1]
            for tiles in dict.fromkeys([DEFAULT_TILES, winner]):
                cell("shapes", "triton", tiles, "fp32", mode, shape, x, torch_s)
            del x
            if (mode, "bf16") in best:
                x = scan_inputs(*shape, torch.bfloat16, device, mode != "fwd")
                cell("shapes", "triton", best[(mode, "bf16")][1], "bf16", mode, shape, x,
                     torch_s)
                del x
    return table


# ----------------------------------------------------------------------------- step section

def step_section(a, sizes, device, dev, out: Path, deadline: float):
    from seqmamba import MambaConfig, MambaLMHeadModel
    from seqmamba.stepper import RecurrentStepper

    table = Table(out / "step_tokens.csv", STEP_FIELDS)
    dtype = torch.bfloat16
    cfg = MambaConfig(**sizes["lm"])
    model = MambaLMHeadModel(cfg).to(device=device, dtype=dtype).eval()
    model.set_scan_backend("triton")
    stepper = RecurrentStepper(model)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    n = sizes["steps"]
    for batch in sizes["batches"]:
        state = Shape(batch, cfg.d_inner, cfg.d_state, 1, "bf16")
        per_token = weight_bytes + cfg.n_layer * scan_bytes("step", state)
        base = dict(batch=batch, n_layer=cfg.n_layer, d_model=cfg.d_model, dtype="bf16",
                    device=dev.name, floor_tokens_s=batch * dev.bandwidth / per_token)
        cache = model.allocate_inference_cache(batch)
        tokens = torch.randint(0, cfg.vocab_size, (batch,), device=device)
        convs = [lc.conv.to(dtype) for lc in cache.layers]
        ssms = [lc.ssm for lc in cache.layers]

        def step():  # one token, greedy, fed back: a function of these tensors alone
            logits, new = stepper._step(tokens, convs, ssms)
            for c, nc in zip(convs, new):
                c.copy_(nc)
            tokens.copy_(logits.argmax(-1))

        def loop(fn):
            def run():
                for _ in range(n):
                    fn()
            t, _ = timed(run, device, 1, 0.0)
            return dict(tokens_s=batch * n / t, ms_per_step=t / n * 1e3)

        with torch.no_grad():
            table.add({**base, "mode": "eager", **attempt(lambda: loop(step), deadline)})
            if device.type != "cuda":
                table.add({**base, "mode": "cuda_graph", "status": "skipped (no CUDA)"})
                continue

            def graphed():
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):
                        step()
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    step()
                return loop(graph.replay)
            table.add({**base, "mode": "cuda_graph", **attempt(graphed, deadline)})
    return table


# ----------------------------------------------------------------------------- train section

def train_section(a, sizes, device, dev, out: Path, deadline: float):
    from seqmamba import MambaConfig, MambaLMHeadModel

    table = Table(out / "train_step.csv", TRAIN_FIELDS)
    cfg = MambaConfig(**sizes["train"])
    model = MambaLMHeadModel(cfg).to(device)
    model.set_scan_backend("triton")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = 1

    def measure(length: int, reps: int) -> dict:
        ids = torch.randint(0, cfg.vocab_size, (batch, length), device=device)

        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = model(ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        try:
            t, _ = timed(step, device, reps, 0.0)
        finally:
            opt.zero_grad(set_to_none=True)
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else ""
        return dict(step_s=t, tokens_s=batch * length / t, peak_gb=peak)

    def run(phase, length):
        reps = sizes["reps"] if phase == "tokens" else 1
        return table.add(dict(phase=phase, batch=batch, length=length, tokens=batch * length,
                              device=dev.name, **attempt(lambda: measure(length, reps), deadline)))

    rows = [run("tokens", tokens // batch) for tokens in sizes["train_tokens"]]
    length = rows[-1]["length"]
    while rows[-1]["status"] == "ok" and length < sizes["fit_max"]:
        length *= 2  # the largest length that fits: double until out of memory
        rows.append(run("fit", length))
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=os.environ.get("OUT"),
                   help="folder for the CSVs (default: $OUT)")
    p.add_argument("--sections", nargs="+", choices=("scan", "step", "train"),
                   default=["scan", "step", "train"])
    p.add_argument("--budget", nargs=3, type=float, default=[160.0, 35.0, 70.0],
                   metavar=("SCAN_S", "STEP_S", "TRAIN_S"),
                   help="seconds after which each section starts no more measurements")
    p.add_argument("--dry-run", action="store_true",
                   help="tiny sizes on the CPU under TRITON_INTERPRET=1 (a check of the script)")
    a = p.parse_args(argv)
    if a.out is None:
        p.error("give --out (or set $OUT)")
    a.out.mkdir(parents=True, exist_ok=True)
    if a.dry_run:
        device, sizes = torch.device("cpu"), DRY
        dev = device_for("cpu dry run (H100 rates)")
    elif torch.cuda.is_available():
        device, sizes = torch.device("cuda"), FULL
        dev = device_for(torch.cuda.get_device_name(0),
                         sms=torch.cuda.get_device_properties(0).multi_processor_count)
    else:
        p.error("no CUDA device: run on a GPU, or with --dry-run")
    torch.manual_seed(0)
    bw = copy_bandwidth(device) if device.type == "cuda" else dev.bandwidth
    print(f"{dev.name}: copy bandwidth {bw / 1e9:.0f} GB/s (data sheet "
          f"{dev.bandwidth / 1e9:.0f}); floors use the copy bandwidth", flush=True)
    dev = device_for(dev.name, bandwidth=bw, sms=dev.sms)
    budgets = dict(zip(("scan", "step", "train"), a.budget))
    tables = {}
    for name in a.sections:
        deadline = time.perf_counter() + budgets[name]
        t0 = time.perf_counter()
        if name == "scan":
            tables["scan"] = scan_section(a, sizes, device, dev, bw, a.out, deadline)
        elif name == "step":
            tables["step"] = step_section(a, sizes, device, dev, a.out, deadline)
        else:
            tables["train"] = train_section(a, sizes, device, dev, a.out, deadline)
        print(f"[{name}] {time.perf_counter() - t0:.0f} s", flush=True)
    summary(tables)
    return 0


def summary(tables: dict) -> None:
    """The lines to read first (the end of a lease's output): each measured cell in brief."""
    print("\n== summary (CSVs hold every column) ==")
    for r in getattr(tables.get("scan"), "rows", []):
        if r["phase"] == "shapes" and r["status"] == "ok":
            print(f"{r['impl']:6s} {r['config']:13s} {r['dtype']} {r['mode']:7s} b{r['batch']} "
                  f"d{r['dim']} L{r['length']:>7d}: {r['time_s'] * 1e3:9.2f} ms  floor "
                  f"{r['floor_frac']:6.1%}  bw {r.get('bw_frac', 0):6.1%}  vs torch "
                  f"{r.get('vs_torch') or 0:5.1f}x")
    for r in getattr(tables.get("step"), "rows", []):
        print(f"step {r['mode']:10s} batch {r['batch']:3d}: {r['status']:>4s} "
              f"{r.get('tokens_s') or 0:10.0f} tokens/s (floor {r['floor_tokens_s']:.0f})")
    for r in getattr(tables.get("train"), "rows", []):
        print(f"train {r['phase']:6s} {r['tokens']:>9d} tokens: {r['status']:>4s} "
              f"{r.get('tokens_s') or 0:10.0f} tokens/s, peak {r.get('peak_gb') or 0:.1f} GB")


if __name__ == "__main__":
    sys.exit(main())
