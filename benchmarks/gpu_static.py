"""Compile every Triton kernel of seqmamba_kernels for a Hopper GPU ahead of time, on a machine
with no GPU, and read registers, spills and shared memory off ptxas for each tile config.
The Mamba-2 (SSD) kernels (``triton_ssd``: ssd_* rows) are compiled at their default tiles
only, in every mode, at SSD_SHAPE.

    python benchmarks/gpu_static.py                 # the grid -> benchmarks/results/gpu_static.csv
    python benchmarks/gpu_static.py --quick         # the default tiles only (the test runs this)
    python benchmarks/gpu_static.py --arch 90 --jobs 16 --out $OUT/gpu_static.csv

Why: GPU time is scarce, and a tile config that spills registers to local memory, or that
leaves few warps resident per SM, is slow whatever the timing says: the compiled code says so.
Each kernel is built exactly as its launcher would launch it (``seqmamba_kernels.triton_scan``'s
``*_launch`` functions, on meta tensors of a real shape, specialised by Triton's own rule: int
arguments equal to 1 become constants, multiples of 16 and tensors are marked 16-aligned), for
``GPUTarget("cuda", arch, 32)``; then the wheel's ptxas re-assembles the PTX with ``-v``.

Columns: registers per thread, spill stores/loads and stack frame (bytes of local memory per
thread), smem_bytes (Triton's dynamic shared memory plus any static), and the theoretical
occupancy on an H100/H200 SM: resident warps / 64, limited by registers (65536 per SM,
allocated per warp in units of 256), shared memory (228 KiB per SM, 1 KiB reserved per block)
or the 64-warp / 32-block caps; ``limiter`` names the binding one.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# The JIT, not the interpreter: ASTSource needs the kernels as JITFunctions, and triton.jit
# reads this when the kernels module is imported (the tests' conftest sets it to 1).
os.environ["TRITON_INTERPRET"] = "0"

import torch  # noqa: E402
import triton  # noqa: E402
from triton._C.libtriton import native_specialize_impl  # noqa: E402  (the JIT's own rule)
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource, make_backend  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from seqmamba_kernels._checks import ScanShapes  # noqa: E402
from seqmamba_kernels.triton_scan import (CANDIDATE_TILES, DEFAULT_TILES,  # noqa: E402
                                          TileConfig, bwd_launch, fwd_launch, grad_buffers,
                                          state_update_launch)
from seqmamba_kernels.triton_ssd import (DEFAULT_SSD_TILES, SSDShapes,  # noqa: E402
                                         chunk_bwd_launch, chunk_out_launch,
                                         chunk_state_launch, dstate_out_launch,
                                         state_pass_bwd_blocks, state_pass_bwd_launch,
                                         state_pass_launch)

FIELDS = ["kernel", "dtype", "config", "block_d", "block_l", "num_warps", "registers",
          "spill_stores", "spill_loads", "stack_bytes", "smem_bytes", "blocks_per_sm",
          "warps_per_sm", "occupancy", "limiter", "compile_s"]
# fwd: inference (no states kept); fwd_train: keeps the state at each tile start for bwd_*;
# bwd_flip / bwd_reverse: the backward's two ways of scanning in reverse (triton_kernels.py)
SCAN_KERNELS = ("fwd", "fwd_train", "bwd_flip", "bwd_reverse")
# the SSD forward: chunk states, state passing, outputs (with D and the z gate, keeping the
# ungated output for the backward); its backward: dstate from the outputs, state passing
# back, the chunk gradients
SSD_KERNELS = ("ssd_state", "ssd_pass", "ssd_out", "ssd_dstate", "ssd_pass_bwd", "ssd_bwd")
KERNELS = SCAN_KERNELS + ("step",) + SSD_KERNELS
# The grid: power-of-two tiles from 4 channels x 16 steps to 32 x 128, 4 and 8 warps, up to
# MAX_PER_THREAD elements per thread of each (block_d, 16 states, block_l) tensor: the default
# (4 x 64, 4 warps) holds 32 and its backward already spills; beyond twice that ptxas takes
# minutes per kernel to spill heavily.  The one-step kernel has no time axis.  --quick: the
# launchers' defaults alone.
SCAN_GRID = dict(block_d=(4, 8, 16, 32), block_l=(16, 32, 64, 128), num_warps=(4, 8))
MAX_PER_THREAD = 64
STEP_GRID = dict(block_d=(16, 32, 64, 128), block_l=(0,), num_warps=(1, 2, 4))
QUICK = {"scan": (DEFAULT_TILES.block_d, DEFAULT_TILES.block_l, DEFAULT_TILES.num_warps),
         "step": (16, 0, 4)}
# Hopper's per-SM limits (CUDA occupancy calculator, compute capability 9.0)
SM = dict(regs=65536, reg_unit=256, smem=228 * 1024, smem_reserved=1024, smem_unit=128,
          warps=64, blocks=32)
# A real launch shape: its sizes only decide the 16-divisibility specialisation
SHAPE = dict(batch=8, dim=2048, state=16, length=65536)
SSD_SHAPE = SSDShapes(batch=4, length=65536, heads=32, head_dim=64, groups=1, state=128,
                      chunk=64)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _meta(*shape, dtype=torch.float32):
    return torch.empty(*shape, dtype=dtype, device="meta")


def build_ssd_launch(kernel: str, dtype: torch.dtype):
    """An SSD kernel's Launch on meta tensors of SSD_SHAPE at the default tiles, as Mamba-2
    calls it: x, z, B, C (and the output gradient) in ``dtype``, D per head, an initial
    state; dt, its cumsum and the states float32."""
    s, t = SSD_SHAPE, DEFAULT_SSD_TILES
    b, L, h, p, g, n, nc, Q = (s.batch, s.length, s.heads, s.head_dim, s.groups, s.state,
                               s.n_chunks, s.chunk)
    x, z, gy = (_meta(b, L, h, p, dtype=dtype) for _ in range(3))
    B, C = _meta(b, L, g, n, dtype=dtype), _meta(b, L, g, n, dtype=dtype)
    dt, a = _meta(b, h, nc, Q), _meta(b, h, nc, Q)
    states, dstates, h0 = _meta(b, h, nc, p, n), _meta(b, h, nc, p, n), _meta(b, h, p, n)
    if kernel == "ssd_state":
        return chunk_state_launch(x, B, dt, a, states, s, t)
    if kernel == "ssd_pass":
        return state_pass_launch(states, a, h0, _meta(b, h, p, n), s, t)
    if kernel == "ssd_out":
        return chunk_out_launch(x, B, C, states, dt, a, _meta(h), z, torch.empty_like(x),
                                torch.empty_like(x), s, t)
    if kernel == "ssd_dstate":
        return dstate_out_launch(gy, C, a, dstates, s, t)
    if kernel == "ssd_pass_bwd":
        dlast = _meta(b, h, nc, state_pass_bwd_blocks(s, t)[1])
        return state_pass_bwd_launch(dstates, states, a, _meta(b, h, p, n), _meta(b, h, p, n),
                                     dlast, s, t)
    return chunk_bwd_launch(x, B, C, states, dstates, dt, a, gy, _meta(b, L, h, p),
                            _meta(b, L, g, n), _meta(b, L, g, n), _meta(b, h, nc, Q),
                            _meta(b, h, nc, Q), s, t)


def build_launch(kernel: str, dtype: torch.dtype, block_d: int, block_l: int, num_warps: int):
    """The launcher's Launch for ``kernel`` on meta tensors, as Mamba calls it: D, z, a fp32
    delta bias, softplus; u, delta, z, B, C (and dout) in ``dtype``; A, D, bias fp32.
    SSD kernels (ssd_*): :func:`build_ssd_launch`, the tile arguments ignored."""
    if kernel.startswith("ssd_"):
        return build_ssd_launch(kernel, dtype)
    b, d, n, L = (SHAPE[k] for k in ("batch", "dim", "state", "length"))
    if kernel == "step":
        x, dt, z, out = (_meta(b, d, dtype=dtype) for _ in range(4))
        B, C = _meta(b, 1, n, dtype=dtype), _meta(b, 1, n, dtype=dtype)
        return state_update_launch(_meta(b, d, n), x, dt, _meta(d, n), B, C, _meta(d),
                                   z, _meta(d), out, True, block_d, num_warps)
    shapes = ScanShapes(batch=b, dim=d, length=L, state=n, b_groups=1, c_groups=1,
                        b_time_invariant=False)
    cfg = TileConfig(block_d=block_d, block_l=block_l, num_warps=num_warps)
    u, delta, z = (_meta(b, d, L, dtype=dtype) for _ in range(3))
    A, D, bias = _meta(d, n), _meta(d), _meta(d)
    B, C = _meta(b, 1, n, L, dtype=dtype), _meta(b, 1, n, L, dtype=dtype)
    last = _meta(b, d, n)
    states = _meta(b, d, triton.cdiv(L, block_l), n)
    if kernel.startswith("fwd"):  # inference keeps no per-tile states: states is last
        return fwd_launch(u, delta, A, B, C, D, z, bias, None, torch.empty_like(u), last,
                          states if kernel == "fwd_train" else last, True, shapes, cfg)
    g = grad_buffers(u, delta, B, C, D, z, bias, shapes)
    # autograd hands the backward a zero gradient for the unused last state (materialised)
    return bwd_launch(u, delta, A, B, C, D, z, bias, states, torch.empty_like(u), last, g,
                      True, shapes, cfg, via_flip=kernel == "bwd_flip")


def compile_launch(launch, target: GPUTarget):
    """triton.compile of the launch's kernel, specialised as the JIT would at that launch."""
    backend = make_backend(target)
    fn = launch.kernel
    meta = dict(launch.meta)
    options = {"num_warps": meta.pop("num_warps")}
    bound = dict(zip(fn.arg_names, launch.args))
    signature, constexprs, attrs = {}, {}, {}
    for i, p in enumerate(fn.params):
        if p.is_constexpr:
            signature[p.name], constexprs[p.name] = "constexpr", meta[p.name]
            continue
        ty, attr = native_specialize_impl(backend, bound[p.name], p.is_const,
                                          not p.do_not_specialize,
                                          not p.do_not_specialize_on_alignment)
        signature[p.name] = ty
        if ty == "constexpr":  # an int argument equal to 1 (a unit stride)
            constexprs[p.name] = attr
        elif isinstance(attr, str):
            attrs[(i,)] = backend.parse_attr(attr)
    src = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    return triton.compile(src, target=target, options=options)


def ptxas_path() -> str:
    """The ptxas Triton itself uses (the wheel's backends/nvidia/bin/ptxas unless overridden)."""
    return triton.knobs.nvidia.ptxas.path


def parse_ptxas(text: str) -> dict:
    """registers, spill_stores, spill_loads, stack_bytes, static_smem from ``ptxas -v``."""
    regs = re.search(r"Used (\d+) registers", text)
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, "
                      r"(\d+) bytes spill loads", text)
    if not (regs and frame):
        raise ValueError(f"no resource report in ptxas output:\n{text}")
    smem = re.search(r"(\d+) bytes smem", text)
    return dict(registers=int(regs.group(1)), stack_bytes=int(frame.group(1)),
                spill_stores=int(frame.group(2)), spill_loads=int(frame.group(3)),
                static_smem=int(smem.group(1)) if smem else 0)


def ptxas_report(ptx: str, gpu_name: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ptx"
        src.write_text(ptx)
        p = subprocess.run([ptxas_path(), "-v", "--gpu-name", gpu_name, str(src), "-o",
                            str(Path(tmp) / "kernel.cubin")], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"ptxas failed ({p.returncode}): {p.stderr[-2000:]}")
    return parse_ptxas(p.stdout + p.stderr)


def occupancy(registers: int, smem_bytes: int, num_warps: int) -> dict:
    """Theoretical residency of one kernel on a Hopper SM (module docstring)."""
    per_warp = math.ceil(registers * 32 / SM["reg_unit"]) * SM["reg_unit"]
    per_block = math.ceil((smem_bytes + SM["smem_reserved"]) / SM["smem_unit"]) * SM["smem_unit"]
    # the hardware caps first, so that a tie names them (full occupancy is not a limit)
    limits = {"warps": SM["warps"] // num_warps, "blocks": SM["blocks"],
              "registers": (SM["regs"] // per_warp) // num_warps,
              "smem": SM["smem"] // per_block}
    limiter = min(limits, key=limits.get)
    blocks = limits[limiter]
    return dict(blocks_per_sm=blocks, warps_per_sm=blocks * num_warps,
                occupancy=round(blocks * num_warps / SM["warps"], 4), limiter=limiter)


def analyse(job) -> dict:
    """One row of the table: compile (kernel, dtype, config) and read its resources."""
    kernel, dtype, (block_d, block_l, num_warps), arch = job
    t0 = time.perf_counter()
    launch = build_launch(kernel, DTYPES[dtype], block_d, block_l, num_warps)
    compiled = compile_launch(launch, GPUTarget("cuda", arch, 32))
    rep = ptxas_report(compiled.asm["ptx"], f"sm_{arch}a" if arch >= 90 else f"sm_{arch}")
    smem = int(compiled.metadata.shared) + rep["static_smem"]
    m = launch.meta
    num_warps = m["num_warps"]
    if kernel.startswith("ssd_"):  # block_d: head_dim per program; block_l: chunk steps
        block_d, block_l = m.get("BLOCK_P", m.get("BLOCK", 0)), m.get("BLOCK_Q", 0)
        config = "-".join(f"{k}{m[v]}" for k, v in (("Q", "BLOCK_Q"), ("P", "BLOCK_P"),
                                                      ("N", "BLOCK_N"), ("PN", "BLOCK"))
                          if v in m) + f"-W{num_warps}"
    else:
        block_d = m["BLOCK_D"]
        config = f"BD{block_d}-" + (f"BL{block_l}-" if block_l else "") + f"W{num_warps}"
    return dict(kernel=kernel, dtype=dtype, config=config, block_d=block_d,
                block_l=block_l, num_warps=num_warps, registers=rep["registers"],
                spill_stores=rep["spill_stores"], spill_loads=rep["spill_loads"],
                stack_bytes=rep["stack_bytes"], smem_bytes=smem,
                **occupancy(rep["registers"], smem, num_warps),
                compile_s=round(time.perf_counter() - t0, 1))


def scan_configs() -> list:
    """(block_d, block_l, num_warps) of the scan grid within MAX_PER_THREAD (see above)."""
    return [(d, l, w) for d, l, w in itertools.product(*SCAN_GRID.values())
            if d * 16 * l <= MAX_PER_THREAD * 32 * w]


def jobs(kernels, dtypes, quick: bool, arch: int, candidates: bool = False) -> list:
    out = []
    for kernel, dtype in itertools.product(kernels, dtypes):
        if kernel.startswith("ssd_"):  # default tiles only: the arguments are ignored
            out.append((kernel, dtype, (0, 0, 0), arch))
            continue
        kind = "step" if kernel == "step" else "scan"
        if quick or (candidates and kind == "step"):
            configs = [QUICK[kind]]
        elif candidates:
            configs = list(dict.fromkeys((t.block_d, t.block_l, t.num_warps)
                                         for t in CANDIDATE_TILES))
        else:
            configs = (list(itertools.product(*STEP_GRID.values())) if kind == "step"
                       else scan_configs())
        out += [(kernel, dtype, cfg, arch) for cfg in configs]
    return out


def _safe(job):
    try:
        return analyse(job)
    except Exception as e:  # noqa: BLE001  (reported, the table goes on)
        return e


def run(todo: list, n_jobs: int, writer) -> int:
    """Analyse ``todo`` (``n_jobs`` at a time), writing each row as it comes; a config that
    fails to compile is reported on stderr and left out.  Returns the rows written."""
    pool = ProcessPoolExecutor(n_jobs) if n_jobs > 1 else None
    results = pool.map(_safe, todo) if pool else map(_safe, todo)
    n = 0
    for j, r in zip(todo, results):
        if isinstance(r, Exception):
            print(f"FAILED {j[:3]}: {type(r).__name__}: {str(r)[:300]}", file=sys.stderr)
            continue
        writer(r)
        n += 1
        print(f"{r['kernel']:12s} {r['dtype']:5s} {r['config']:14s} regs {r['registers']:3d} "
              f"spill {r['spill_stores']:5d}/{r['spill_loads']:<5d} smem {r['smem_bytes']:6d} "
              f"occ {r['occupancy']:.3f} ({r['limiter']}) {r['compile_s']}s", flush=True)
    if pool:
        pool.shutdown()
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one config per kernel (the defaults)")
    p.add_argument("--candidates", action="store_true",
                   help="the scan kernels at triton_scan.CANDIDATE_TILES only (what a GPU "
                        "sweep launches: compiling them first fills Triton's cache for it)")
    p.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS))
    p.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=None,
                   help="default: fp32 with --quick, else fp32 and bf16")
    p.add_argument("--arch", type=int, default=90, help="compute capability x 10 (90: Hopper)")
    p.add_argument("--jobs", type=int, default=1, help="parallel compilations")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_static.csv")
    a = p.parse_args(argv)
    dtypes = a.dtypes or (["fp32"] if a.quick else ["fp32", "bf16"])
    todo = jobs(a.kernels, dtypes, a.quick, a.arch, a.candidates)
    print(f"triton {triton.__version__}, ptxas {ptxas_path()}, target sm_{a.arch}: "
          f"{len(todo)} compilations", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".csv.tmp")  # rows land as they come; renamed when complete
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()

        def write(row):
            w.writerow(row)
            f.flush()

        n = run(todo, a.jobs, write)
    tmp.replace(a.out)
    print(f"wrote {a.out} ({n} rows)")
    return 0 if n == len(todo) else 1


if __name__ == "__main__":
    sys.exit(main())
