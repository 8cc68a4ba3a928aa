"""How should a fused CPU forward selective-scan kernel be built?  Every candidate, one run.

    python benchmarks/cpu_build_options.py                 # the full table (a few minutes)
    python benchmarks/cpu_build_options.py --threads 2 --repeats 5
    python benchmarks/cpu_build_options.py --candidates c_ctypes numba --out /tmp/x.csv

The op is the Mamba (S6) forward scan in float32 with state size N=16, delta_softplus, D and
z (no delta_bias, no initial state)::

    dt_t = softplus(delta_t);  h_t[n] = exp(dt_t A[d,n]) h_{t-1}[n] + dt_t B[n,t] u_t
    y_t  = sum_n h_t[n] C[n,t] + D[d] u_t;  out_t = y_t * silu(z_t)

Candidates (each in its own function; one that cannot run is recorded as skipped, with why):

  c_ctypes          plain C (no torch headers), ``gcc -O3 -march=native -shared -fPIC -fopenmp``
                    into a temporary folder, loaded with ctypes.  OpenMP over (batch, channel),
                    time loop inside, the state in a local float[16], expf from libm.
  c_ctypes_fastmath the same source with ``-ffast-math`` added, which lets gcc call glibc's
                    vector expf (libmvec): how much of the C kernel's time is scalar expf.
  numba             ``numba.njit(parallel=True, fastmath=False)``, prange over (batch, channel).
  torch_compile     ``torch.compile`` (inductor, CPU C++ backend) of a chunk of CHUNK time steps
                    written as a plain Python loop, called once per chunk with the state carried.
                    It runs in a child process with a cold inductor cache, so its compile time
                    is the one a first-time user pays and a runaway compile can be cut off
                    (``--compile-timeout``).
  torch_eager_loop  the library's existing ``backend="torch"`` (chunked eager PyTorch ops), the
                    baseline every speed-up is relative to.

Every candidate is first checked against a float64 loop over time on a small shape
(relative error ||x - ref|| / ||ref|| < 1e-5) and is not timed if it fails; its output on each
benchmark shape is also compared with torch_eager_loop's (noted as ``vs_torch``).

Every candidate is timed in a process that has already run the eager baseline on every shape
(the torch_compile child runs its own copy first).  That matters: after the long-sequence
call, glibc malloc's adaptive mmap threshold has moved, and the calls that allocate per chunk
change speed with it (torch_compile at 32x128x128 measured 4.0 ms in a fresh process and
9.0 ms after one eager 1x512x16384 call; with MALLOC_MMAP_THRESHOLD_=131072, 16 ms).

Columns of ``benchmarks/results/cpu_build_options.csv`` (written atomically):

  build_s       one-off cost before the candidate can run at all: gcc's compile, numba's JIT
                (its first call, on the small check shape), torch.compile's first compile (its
                first call, on the check shape, cold cache); 0 for the eager baseline.
  first_call_s  the first call on this benchmark shape: includes whatever per-shape work is
                left (torch.compile with static shapes recompiles for every new shape).
  seconds       steady state: the median of ``--repeats`` calls after one warm-up call.
  gupdates_per_s  batch * dim * length * 16 state updates / seconds / 1e9.
  speedup_vs_torch  torch_eager_loop's seconds / this candidate's seconds, same shape, same run.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # `seqmamba_kernels` when run from anywhere
sys.path.insert(0, str(HERE))  # `_proc`

from _proc import write_csv_atomic  # noqa: E402

import torch  # noqa: E402  (imported before the C library, so both share torch's libgomp)
import torch.nn.functional as F  # noqa: E402

NSTATE = 16
SHAPES = ((1, 512, 16384), (32, 128, 128))  # (batch, dim, length)
CHECK_SHAPE = (2, 24, 192)  # small; a multiple of the torch_compile chunk
CHECK_TOL = 1e-5
# torch_compile: time steps unrolled into one compiled graph.  Measured at 1x512x2048 and
# 32x128x128: 16 -> 1.3 / 2.6 G/s, 32 -> 1.5 / 2.2 G/s, 64 -> 0.4 / 0.4 G/s (the 64-step graph
# presumably outgrows inductor's max_fusion_size of 64 nodes and is no longer fused).
CHUNK = 32
CANDIDATES = ("torch_eager_loop", "c_ctypes", "c_ctypes_fastmath", "numba", "torch_compile")
FIELDS = ["candidate", "batch", "dim", "length", "threads", "build_s", "first_call_s",
          "seconds", "gupdates_per_s", "speedup_vs_torch", "note"]
OUT = HERE / "results" / "cpu_build_options.csv"


class Skip(Exception):
    """A candidate that cannot run here; the message says why."""


# ----------------------------------------------------------------------------- inputs, reference

def make_inputs(batch, dim, length, seed=0):
    """Inputs as benchmarks/scan.py makes them: Mamba's A = -(1..N), delta centred at -2."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, shift=0.0):
        return torch.randn(*shape, generator=g) + shift

    return dict(u=rnd(batch, dim, length), delta=rnd(batch, dim, length, shift=-2.0),
                A=-torch.arange(1, NSTATE + 1, dtype=torch.float32).repeat(dim, 1),
                B=rnd(batch, NSTATE, length), C=rnd(batch, NSTATE, length), D=rnd(dim),
                z=rnd(batch, dim, length))


def reference(u, delta, A, B, C, D, z):
    """The op in float64, one time step at a time: slow and obviously right."""
    u, delta, A, B, C, D, z = (t.double() for t in (u, delta, A, B, C, D, z))
    dt = F.softplus(delta)
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float64)
    ys = []
    for t in range(u.shape[2]):
        h = torch.exp(dt[:, :, t, None] * A) * h + (dt[:, :, t] * u[:, :, t])[..., None] \
            * B[:, None, :, t]
        ys.append((h * C[:, None, :, t]).sum(-1))
    y = torch.stack(ys, -1) + D[:, None] * u
    return y * F.silu(z)


def rel_err(x, ref):
    ref = ref.double()
    return float((x.double() - ref).norm() / ref.norm())


def check(fn, name):
    """Raise unless fn matches the float64 reference on the small check shape; return the error."""
    x = make_inputs(*CHECK_SHAPE, seed=1)
    err = rel_err(fn(**x), reference(**x))
    if not err < CHECK_TOL:  # also catches NaN
        raise AssertionError(f"{name}: rel. error {err:.2e} >= {CHECK_TOL:g} on {CHECK_SHAPE}")
    return err


# ----------------------------------------------------------------------------- candidates
# Each returns (scan function taking the make_inputs() tensors, build_s, note).

def torch_eager_loop(threads):
    from seqmamba_kernels import selective_scan

    def scan(u, delta, A, B, C, D, z):
        with torch.no_grad():
            return selective_scan(u, delta, A, B, C, D=D, z=z, delta_softplus=True,
                                  backend="torch")

    return scan, 0.0, ""


C_SOURCE = r"""
#include <math.h>
#include <stdint.h>

#define NSTATE 16

/* torch's softplus (beta 1, threshold 20): linear above 20, where exp would overflow. */
static inline float softplusf(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* u, delta, z, out: (batch, dim, length); A: (dim, NSTATE); B, C: (batch, NSTATE, length);
   D: (dim,).  All contiguous float32.  Each (batch, channel) pair is an independent
   recurrence, so they are the parallel loop; the 16 states stay in registers. */
void scan_fwd(const float *u, const float *delta, const float *A, const float *B,
              const float *C, const float *D, const float *z, float *out,
              int64_t batch, int64_t dim, int64_t length, int nthreads)
{
    #pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t bd = 0; bd < batch * dim; ++bd) {
        const int64_t b = bd / dim, d = bd % dim;
        const float *ub = u + bd * length, *db = delta + bd * length, *zb = z + bd * length;
        const float *Bb = B + b * NSTATE * length, *Cb = C + b * NSTATE * length;
        float *ob = out + bd * length;
        float a[NSTATE], h[NSTATE];
        for (int n = 0; n < NSTATE; ++n) { a[n] = A[d * NSTATE + n]; h[n] = 0.0f; }
        const float Dd = D[d];
        for (int64_t t = 0; t < length; ++t) {
            const float dt = softplusf(db[t]), ut = ub[t], x = dt * ut;
            float y = 0.0f;
            for (int n = 0; n < NSTATE; ++n) {
                h[n] = expf(dt * a[n]) * h[n] + x * Bb[n * length + t];
                y += h[n] * Cb[n * length + t];
            }
            y += Dd * ut;
            const float zt = zb[t];
            ob[t] = y * (zt / (1.0f + expf(-zt)));
        }
    }
}
"""
C_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-fopenmp"]
# Without it gcc must call scalar expf (errno, exact NaN/inf rules), 16 calls per step.  With
# it, glibc's math.h declares the libmvec SIMD variants and the state loop becomes a few
# vector expf calls; the price is IEEE strictness (reassociated sums, no NaN/inf guarantees).
FAST_MATH = "-ffast-math"


def c_ctypes(threads, workdir, fast_math=False):
    cc = shutil.which("gcc")
    if cc is None:
        raise Skip("no gcc on PATH")
    tag = "_fastmath" if fast_math else ""  # distinct paths: dlopen hands back a loaded path
    src, lib = Path(workdir) / f"scan{tag}.c", Path(workdir) / f"libscan{tag}.so"
    src.write_text(C_SOURCE)
    if not fast_math:
        steps = [[cc, *C_FLAGS, str(src), "-o", str(lib), "-lm"]]
    else:
        # Compile and link apart: a link with -ffast-math adds gcc's crtfastmath.o (gcc < 13
        # does so even for -shared), whose constructor turns on flush-to-zero/denormals-are-
        # zero for the whole process the moment the library is loaded, silently changing
        # every later computation in it (torch and numba included).
        obj = Path(workdir) / f"scan{tag}.o"
        compile_flags = [f for f in C_FLAGS if f != "-shared"] + [FAST_MATH]
        steps = [[cc, *compile_flags, "-c", str(src), "-o", str(obj)],
                 [cc, "-shared", "-fopenmp", str(obj), "-o", str(lib), "-lm"]]
    t0 = time.perf_counter()
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            break
    build_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise Skip(f"gcc failed: {proc.stderr.strip()[:300]}")
    so = ctypes.CDLL(str(lib))
    if _flushes_denormals():
        raise Skip(f"loading {lib.name} switched the process to flush-to-zero")
    fn = so.scan_fwd
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p] * 8 + [ctypes.c_int64] * 3 + [ctypes.c_int]

    def scan(u, delta, A, B, C, D, z):
        batch, dim, length = u.shape
        assert A.shape == (dim, NSTATE), "the C kernel is built for state size 16"
        args = [t.contiguous().float() for t in (u, delta, A, B, C, D, z)]
        out = torch.empty_like(args[0])
        fn(*(t.data_ptr() for t in args), out.data_ptr(), batch, dim, length, threads)
        return out

    flags = " ".join(C_FLAGS + ([FAST_MATH + " (compile step only)"] if fast_math else []))
    return scan, build_s, f"{flags}; gcc {_gcc_version(cc)}"


def _flushes_denormals():
    """True if this process's floating-point mode flushes subnormal floats to zero."""
    return bool((torch.tensor([1e-40]) * 1.0 == 0).item())


def _gcc_version(cc):
    return subprocess.run([cc, "-dumpfullversion"], capture_output=True, text=True).stdout.strip()


def numba_candidate(threads):
    # numba sizes its pool from NUMBA_NUM_THREADS when first imported; make room for --threads.
    os.environ.setdefault("NUMBA_NUM_THREADS", str(max(threads, os.cpu_count() or 1)))
    try:
        import numba
        import numpy as np
    except ImportError as e:
        raise Skip(f"numba not importable ({e}); pip install numba -c constraints.txt "
                   "(numpy must stay < 2.4)") from None
    numba.set_num_threads(threads)

    @numba.njit(parallel=True, fastmath=False, cache=False)
    def kernel(u, delta, A, B, C, D, z, out):
        batch, dim, length = u.shape
        nstate = A.shape[1]
        one, twenty = np.float32(1.0), np.float32(20.0)
        for bd in numba.prange(batch * dim):
            b, d = bd // dim, bd % dim
            h = np.zeros(nstate, np.float32)
            for t in range(length):
                x = delta[b, d, t]
                # every operand is float32, so the arithmetic stays in float32 like the C kernel
                dt = x if x > twenty else np.log1p(np.exp(x))
                ut = u[b, d, t]
                xu = dt * ut
                y = np.float32(0.0)
                for n in range(nstate):
                    h[n] = np.exp(dt * A[d, n]) * h[n] + xu * B[b, n, t]
                    y += h[n] * C[b, n, t]
                y += D[d] * ut
                zt = z[b, d, t]
                out[b, d, t] = y * (zt / (one + np.exp(-zt)))

    def scan(u, delta, A, B, C, D, z):
        arrs = [t.contiguous().float().numpy() for t in (u, delta, A, B, C, D, z)]
        out = np.empty_like(arrs[0])
        kernel(*arrs, out)
        return torch.from_numpy(out)

    # build_s is numba's JIT: the first call, on the (tiny) check shape, is all compilation.
    x = make_inputs(*CHECK_SHAPE, seed=1)
    t0 = time.perf_counter()
    scan(**x)
    build_s = time.perf_counter() - t0
    note = f"numba {numba.__version__}, threading layer {numba.threading_layer()}"
    return scan, build_s, note


def _chunk_scan(h, u, delta, A, B, C, D, z):
    """CHUNK steps of the op as plain tensor ops; the Python loop is unrolled when traced.

    h: (b, d, N) state carried in; u, delta, z: (b, d, T); B, C: (b, N, T).  Returns the
    chunk's output (b, d, T) and the state after it.

    The states are stacked and contracted with C once, after the loop.  The more obvious
    per-step ``ys.append((h * C[:, None, :, t]).sum(-1))`` is miscompiled by inductor's
    vectorised CPU code in torch 2.11: every step's y but the last two comes out wrong
    (right with ``cpp.simdlen = 1`` or ``max_fusion_size = 1``), which the check catches.
    """
    dt = F.softplus(delta)
    x = dt * u
    hs = []
    for t in range(u.shape[2]):
        h = torch.exp(dt[:, :, t, None] * A) * h + x[:, :, t, None] * B[:, None, :, t]
        hs.append(h)
    H = torch.stack(hs, 2)  # (b, d, T, N)
    y = (H * C.transpose(1, 2)[:, None]).sum(-1) + D[:, None] * u
    return y * F.silu(z), h


def torch_compile(threads):
    """Only ever called in the child process (see _run_torch_compile_child)."""
    if not hasattr(torch, "compile"):
        raise Skip("this torch has no torch.compile")
    # Static shapes: each new (batch, dim) recompiles, and that cost shows in first_call_s.
    step = torch.compile(_chunk_scan, backend="inductor", dynamic=False, fullgraph=True)

    def scan(u, delta, A, B, C, D, z):
        batch, dim, length = u.shape
        if length % CHUNK:
            raise ValueError(f"torch_compile candidate needs length % {CHUNK} == 0")
        out = torch.empty_like(u)
        h = u.new_zeros(batch, dim, A.shape[1])
        with torch.no_grad():
            for c0 in range(0, length, CHUNK):
                c1 = c0 + CHUNK
                out[:, :, c0:c1], h = step(h, u[:, :, c0:c1], delta[:, :, c0:c1], A,
                                           B[:, :, c0:c1], C[:, :, c0:c1], D, z[:, :, c0:c1])
        return out

    x = make_inputs(*CHECK_SHAPE, seed=1)
    t0 = time.perf_counter()
    scan(**x)
    build_s = time.perf_counter() - t0
    return scan, build_s, f"chunk {CHUNK}, inductor, static shapes, cold cache"


# ----------------------------------------------------------------------------- measuring

def measure(name, scan, build_s, note, threads, repeats, shapes, baseline=None, keep=None):
    """Check, then time scan on every benchmark shape; one CSV row (dict) per shape.

    baseline maps a shape to torch_eager_loop's output, to compare with; keep, if given, is
    filled with this candidate's output per shape (how the baseline is made).
    """
    err = check(scan, name)
    rows = []
    for batch, dim, length in shapes:
        x = make_inputs(batch, dim, length)
        load1 = os.getloadavg()[0]
        t0 = time.perf_counter()
        out = scan(**x)
        first = time.perf_counter() - t0
        scan(**x)  # warm-up (caches, page faults, thread pools)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            scan(**x)
            times.append(time.perf_counter() - t0)
        sec = median(times)
        if keep is not None:
            keep[(batch, dim, length)] = out
        # The 1-minute load average before this shape (this run's own threads included): on a
        # shared machine, a load well above --threads means contended timings, which eager's
        # per-step OpenMP barriers suffer from most.
        extra = f"load1 {load1:.2f}; check rel.err {err:.1e}"
        ref = (baseline or {}).get((batch, dim, length))
        if ref is not None:
            extra += f"; vs_torch rel.err {rel_err(out, ref):.1e}"
        rows.append(dict(candidate=name, batch=batch, dim=dim, length=length, threads=threads,
                         build_s=round(build_s, 3), first_call_s=round(first, 4),
                         seconds=sec, gupdates_per_s=batch * dim * length * NSTATE / sec / 1e9,
                         note="; ".join(s for s in (note, extra) if s)))
        print(f"  {name:17s} {batch:3d}x{dim:4d}x{length:6d}  {sec * 1e3:9.2f} ms  "
              f"{rows[-1]['gupdates_per_s']:6.2f} G/s  (first call {first:.3f} s)", flush=True)
    return rows


def skipped(name, args, reason):
    print(f"  {name:17s} skipped: {reason}", flush=True)
    return [dict(candidate=name, batch=b, dim=d, length=l, threads=args.threads,
                 note=f"skipped: {reason}") for b, d, l in args.shapes]


def run_candidate(name, make, args, baseline=None, keep=None):
    """Build (make() -> scan, build_s, note), check and time one candidate; never raises."""
    try:
        scan, build_s, note = make()
    except Skip as e:
        return skipped(name, args, str(e))
    except Exception as e:  # a broken build is a result, not a crash of the whole table
        return skipped(name, args, f"{type(e).__name__}: {e}")
    if build_s:
        print(f"  {name:17s} build {build_s:.2f} s", flush=True)
    try:
        return measure(name, scan, build_s, note, args.threads, args.repeats, args.shapes,
                       baseline, keep)
    except Exception as e:
        return skipped(name, args, f"{type(e).__name__}: {e}")


def _run_torch_compile_child(args):
    """In the child: a cold inductor cache, torch_compile measured, rows as JSON on stdout."""
    torch.set_num_threads(args.threads)
    eager = torch_eager_loop(args.threads)[0]
    # the child's own copy of the baseline output, for the vs_torch error
    baseline = {shape: eager(**make_inputs(*shape)) for shape in args.shapes}
    rows = run_candidate("torch_compile", lambda: torch_compile(args.threads), args, baseline)
    print("ROWS " + json.dumps(rows), flush=True)


def torch_compile_in_child(args):
    """torch_compile in a fresh process, so a compile that runs away can be killed."""
    with tempfile.TemporaryDirectory(prefix="inductor_cache_") as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
        cmd = [sys.executable, __file__, "--_child", "--threads", str(args.threads),
               "--repeats", str(args.repeats),
               "--shapes", *(f"{b}x{d}x{l}" for b, d, l in args.shapes)]
        # Own session, so on a timeout the whole group (inductor's compile workers too) dies.
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        try:
            out, err = p.communicate(timeout=args.compile_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            return skipped("torch_compile", args,
                           f"did not finish within {args.compile_timeout} s (compile + timing)")
    rows = None
    for line in out.splitlines():
        if line.startswith("ROWS "):
            rows = json.loads(line[5:])
        else:
            print(line, flush=True)
    if p.returncode != 0 or rows is None:
        tail = err.strip().splitlines()[-1:] or [f"exit status {p.returncode}"]
        return skipped("torch_compile", args, f"child failed: {tail[0][:300]}")
    return rows


def _shape(text):
    batch, dim, length = (int(v) for v in text.lower().split("x"))
    return batch, dim, length


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch, OpenMP and numba threads")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per shape (median)")
    ap.add_argument("--candidates", nargs="+", choices=CANDIDATES, default=list(CANDIDATES),
                    help="which to run (torch_eager_loop, the baseline, always runs)")
    ap.add_argument("--compile-timeout", type=int, default=300,
                    help="seconds torch_compile's child may take, compile and timing together")
    ap.add_argument("--shapes", nargs="+", type=_shape, default=list(SHAPES),
                    metavar="BxDxL", help="benchmark shapes, e.g. 1x512x16384 32x128x128")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        return _run_torch_compile_child(args)

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.repeats} repeats; "
          f"shapes (batch, dim, length) {args.shapes}", flush=True)
    t_start = time.perf_counter()
    # The baseline always runs: every speed-up is relative to it, in this same run.
    baseline = {}
    rows = run_candidate("torch_eager_loop", lambda: torch_eager_loop(args.threads), args,
                         keep=baseline)
    with tempfile.TemporaryDirectory(prefix="scan_c_") as workdir:
        for name in args.candidates:
            if name == "c_ctypes":
                rows += run_candidate(name, lambda: c_ctypes(args.threads, workdir), args,
                                      baseline)
            elif name == "c_ctypes_fastmath":
                rows += run_candidate(name, lambda: c_ctypes(args.threads, workdir, True), args,
                                      baseline)
            elif name == "numba":
                rows += run_candidate(name, lambda: numba_candidate(args.threads), args,
                                      baseline)
            elif name == "torch_compile":
                rows += torch_compile_in_child(args)

    base_s = {(r["batch"], r["dim"], r["length"]): r["seconds"]
              for r in rows if r["candidate"] == "torch_eager_loop" and r.get("seconds")}
    for r in rows:
        ref = base_s.get((r["batch"], r["dim"], r["length"]))
        if r.get("seconds") and ref:
            r["speedup_vs_torch"] = round(ref / r["seconds"], 2)
        if r.get("seconds"):
            r["seconds"] = round(r["seconds"], 6)
            r["gupdates_per_s"] = round(r["gupdates_per_s"], 3)
    write_csv_atomic(rows, args.out, FIELDS)
    print(f"wrote {args.out} ({time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
