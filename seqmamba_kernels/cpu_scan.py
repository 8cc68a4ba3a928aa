"""The fused CPU backend: the selective scan and its one-step update in compiled C.

The kernel (``csrc/selective_scan_cpu.c``, built by :mod:`seqmamba_kernels._cpu_build`) makes one
pass over the inputs per direction: the exp of dt*A, the recurrence and the contraction with
C happen in registers, vectorised over 16 channels, and the (batch, length, dim, state)
tensor is never formed.  Memory beyond inputs and outputs: the state at every ``tile``
steps for the backward (``state / tile`` floats per input element: 1/4 of one input for
state 16, tile 64) and per-thread buffers of a few hundred kB.

Inputs may have any strides (the model hands over transposed views) and are read in place;
float32 is read directly, bfloat16/float16 inputs are converted to float32 copies first (all
arithmetic is float32) and outputs converted back.  Threads: ``torch.get_num_threads()``.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Optional

import torch

from ._checks import ScanShapes
from ._cpu_build import ABI_VERSION, get_library

LANES = 16  # channels per vector block (W in the C source)
DEFAULT_TILE = 64  # time steps per tile: the backward keeps one state per tile
_PARALLEL_MIN_UPDATES = 1 << 16  # below this, a call runs on the calling thread only

_i64 = ctypes.c_int64
_ptr = ctypes.c_void_p


def _strides(n):
    return _i64 * n


class _ScanArgs(ctypes.Structure):
    """Mirror of ``scan_args`` in the C source (every field 64 bits wide)."""

    _fields_ = [(n, _i64) for n in ("batch", "dim", "length", "nstate", "tile", "softplus",
                                    "b_ti", "nthreads")] + \
        [(n, _ptr) for n in ("u", "delta", "A", "B", "C", "D", "z", "bias", "h0")] + \
        [("su", _strides(3)), ("sdelta", _strides(3)), ("sz", _strides(3)),
         ("sB", _strides(4)), ("sC", _strides(4))] + \
        [(n, _ptr) for n in ("out", "last", "saved")] + [("sout", _strides(3))] + \
        [("n_blocks", _i64), ("blocks", _ptr)] + \
        [(n, _ptr) for n in ("dout", "dlast")] + [("sdout", _strides(3))] + \
        [(n, _ptr) for n in ("du", "ddelta", "dz", "dBp", "dCp", "dA", "dBti", "dD", "dbias",
                             "dh0")] + \
        [("sdu", _strides(3)), ("sddelta", _strides(3)), ("sdz", _strides(3)),
         ("sdBp", _strides(4)), ("sdCp", _strides(4))] + \
        [("n_supers", _i64), ("supers", _ptr)]


class _StepArgs(ctypes.Structure):
    """Mirror of ``step_args`` in the C source."""

    _fields_ = [(n, _i64) for n in ("batch", "dim", "nstate", "softplus", "nthreads",
                                    "n_blocks")] + \
        [(n, _ptr) for n in ("blocks", "state", "x", "dt", "A", "B", "C", "D", "z", "bias")] + \
        [("b_groups", _i64), ("c_groups", _i64), ("out", _ptr)]


class _ConvArgs(ctypes.Structure):
    """Mirror of ``conv_args`` in the C source."""

    _fields_ = [(n, _i64) for n in ("batch", "dim", "length", "width", "silu", "nthreads",
                                    "tchunk", "n_blocks")] + \
        [(n, _ptr) for n in ("x", "weight", "bias", "state")] + [("sx", _strides(3))] + \
        [("out", _ptr), ("sout", _strides(3))]


@lru_cache(maxsize=1)
def _bound():
    """(library, None) with argument types set, or (None, reason)."""
    lib, reason = get_library()
    if lib is None:
        return None, reason
    want = ABI_VERSION * 1_000_000 + ctypes.sizeof(_ScanArgs)
    got = lib.seqmamba_cpu_abi()
    lib.seqmamba_cpu_step_args_size.restype = _i64
    lib.seqmamba_cpu_conv_args_size.restype = _i64
    if (got != want or lib.seqmamba_cpu_step_args_size() != ctypes.sizeof(_StepArgs)
            or lib.seqmamba_cpu_conv_args_size() != ctypes.sizeof(_ConvArgs)):
        return None, (f"the compiled CPU kernel does not match this Python code (ABI {got} vs "
                      f"{want}); delete the kernel cache folder to rebuild it")
    for name, argtype in (("seqmamba_cpu_scan_fwd", _ScanArgs), ("seqmamba_cpu_scan_bwd", _ScanArgs),
                          ("seqmamba_cpu_state_update", _StepArgs),
                          ("seqmamba_cpu_causal_conv1d", _ConvArgs)):
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.POINTER(argtype)]
        fn.restype = ctypes.c_int
    lib.seqmamba_cpu_roofline.argtypes = [_i64, _i64, ctypes.c_int]
    lib.seqmamba_cpu_roofline.restype = ctypes.c_double
    return lib, None


def cpu_kernel_unavailable_reason() -> Optional[str]:
    """None when the fused CPU kernel is built and loaded, else why it is not (builds it)."""
    return _bound()[1]


def _lib():
    lib, reason = _bound()
    if lib is None:
        raise RuntimeError(f"the fused CPU scan kernel is unavailable: {reason}")
    return lib


# ------------------------------------------------------------------------------ planning

@lru_cache(maxsize=256)
def _blocks(dim: int, b_groups: int, c_groups: int) -> torch.Tensor:
    """Channel blocks (d0, width, B group, C group), (n_blocks, 4) int64.

    A block is at most 16 consecutive channels inside one B group and one C group, so that
    B_t and C_t are one scalar per state index for the whole block.  b_groups=0 stands for
    a time-invariant (dim, state) B, which places no constraint.
    """
    db = dim // b_groups if b_groups else dim
    dc = dim // c_groups
    rows, d = [], 0
    while d < dim:
        end = min(d + LANES, (d // db + 1) * db, (d // dc + 1) * dc)
        rows.append((d, end - d, d // db if b_groups else 0, d // dc))
        d = end
    return torch.tensor(rows, dtype=torch.int64)


@lru_cache(maxsize=256)
def _supers(dim: int, b_groups: int, c_groups: int, target: int) -> tuple:
    """Split the blocks into about ``target`` super-blocks, runs of blocks in one B/C group.

    Returns (supers (n, 2) int64 of (first block, count), B group and C group of each super).
    """
    blocks = _blocks(dim, b_groups, c_groups).tolist()
    runs, start = [], 0  # maximal runs of blocks with the same groups
    for i in range(1, len(blocks) + 1):
        if i == len(blocks) or blocks[i][2:] != blocks[start][2:]:
            runs.append((start, i - start))
            start = i
    target = max(target, len(runs))
    rows = []
    for first, count in runs:
        parts = max(1, min(count, round(target * count / len(blocks))))
        edges = [first + (count * p) // parts for p in range(parts + 1)]
        rows += [(a, b - a) for a, b in zip(edges, edges[1:])]
    sup = torch.tensor(rows, dtype=torch.int64)
    return sup, [blocks[a][2] for a, _ in rows], [blocks[a][3] for a, _ in rows]


def _f32(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """float32 view of t (t itself when already float32; strides are kept)."""
    if t is None or t.dtype == torch.float32:
        return t
    return t.float()


def _dense(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Contiguous float32 (small per-channel tensors and states)."""
    return None if t is None else t.float().contiguous()


def _p(t: Optional[torch.Tensor]) -> int:
    return 0 if t is None else t.data_ptr()


def _threads(work: int) -> int:
    return 1 if work < _PARALLEL_MIN_UPDATES else max(1, torch.get_num_threads())


def _as4(t: torch.Tensor) -> torch.Tensor:
    """(batch, state, length) -> (batch, 1, state, length); 4-d and 2-d unchanged."""
    return t[:, None] if t.dim() == 3 else t


def _scan_args(s: ScanShapes, softplus: bool, tile: int, u, delta, A, B, C, D, z, bias,
               h0=None) -> tuple:
    """The kernel's arguments for the inputs of one call, as the forward and the backward both
    pass them: (args, tensors the arguments point into, which the caller keeps alive).

    Big inputs are read in place (float32 views, any strides); small ones made dense."""
    B4 = B if s.b_time_invariant else _as4(B)
    held = [_f32(u), _f32(delta), _dense(A), _f32(B4), _f32(_as4(C)), _dense(D), _f32(z),
            _dense(bias), _dense(h0)]
    u32, d32, _, B32, C32, _, z32, _, _ = held
    blocks = _blocks(s.dim, 0 if s.b_time_invariant else s.b_groups, s.c_groups)
    held.append(blocks)
    a = _ScanArgs()
    a.batch, a.dim, a.length, a.nstate = s.batch, s.dim, s.length, s.state
    a.tile, a.softplus, a.b_ti = tile, int(softplus), int(s.b_time_invariant)
    a.nthreads = _threads(s.batch * s.dim * s.length * s.state)
    for name, t in zip(("u", "delta", "A", "B", "C", "D", "z", "bias", "h0"), held):
        setattr(a, name, _p(t))
    a.su[:], a.sdelta[:] = u32.stride(), d32.stride()
    if z32 is not None:
        a.sz[:] = z32.stride()
    if s.b_time_invariant:
        a.sB[:2] = B32.stride()
    else:
        a.sB[:] = B32.stride()
    a.sC[:] = C32.stride()
    a.n_blocks, a.blocks = blocks.shape[0], blocks.data_ptr()
    return a, held


def _check(rc: int) -> None:
    if rc != 0:
        raise MemoryError("the fused CPU scan kernel could not allocate its per-thread buffers")


class _CpuScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, initial_state, softplus, shapes, tile):
        s: ScanShapes = shapes
        lib = _lib()
        a, held = _scan_args(s, softplus, tile, u, delta, A, B, C, D, z, delta_bias,
                             initial_state)
        keep = any(ctx.needs_input_grad)
        nchunks = -(-s.length // tile)
        out = torch.empty_like(held[0])  # u's layout, float32
        last = u.new_empty((s.batch, s.dim, s.state), dtype=torch.float32)
        saved = (u.new_empty((s.batch, nchunks, s.dim, s.state), dtype=torch.float32)
                 if keep else None)
        a.out, a.last, a.saved = out.data_ptr(), last.data_ptr(), _p(saved)
        a.sout[:] = out.stride()
        _check(lib.seqmamba_cpu_scan_fwd(ctypes.byref(a)))
        if keep:
            ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, initial_state, saved)
            ctx.cfg = (s, softplus, tile)
        return (out if u.dtype == torch.float32 else out.to(u.dtype)), last

    @staticmethod
    def backward(ctx, grad_out, grad_last):
        u, delta, A, B, C, D, z, delta_bias, initial_state, saved = ctx.saved_tensors
        s, softplus, tile = ctx.cfg
        lib = _lib()
        a, held = _scan_args(s, softplus, tile, u, delta, A, B, C, D, z, delta_bias)
        u32, d32, z32 = held[0], held[1], held[6]
        n_blocks = held[-1].shape[0]
        a.saved = saved.data_ptr()
        if grad_out is None:
            grad_out = torch.zeros_like(u32)
        g32 = _f32(grad_out)
        a.dout, a.sdout[:] = g32.data_ptr(), g32.stride()
        dlast = _dense(grad_last)  # held in a variable: the kernel reads it after this line
        a.dlast = _p(dlast)

        b, dim, n = s.batch, s.dim, s.state
        du, ddelta = torch.empty_like(u32), torch.empty_like(d32)
        dz = torch.empty_like(z32) if z is not None else None
        a.du, a.ddelta, a.dz = du.data_ptr(), ddelta.data_ptr(), _p(dz)
        a.sdu[:], a.sddelta[:] = du.stride(), ddelta.stride()
        if dz is not None:
            a.sdz[:] = dz.stride()
        # Super-blocks: enough (batch, super-block) items to keep every thread busy, but their
        # dB/dC partials (super-blocks x state per step) stay within a quarter of one
        # (batch, dim, length) tensor, so that few wide states never cost more than the inputs.
        target = 1
        if a.nthreads > 1:
            target = min(n_blocks, -(-4 * a.nthreads // b), max(1, dim // (4 * n)))
        sup, sup_gb, sup_gc = _supers(dim, 0 if s.b_time_invariant else s.b_groups,
                                      s.c_groups, target)
        a.n_supers, a.supers = sup.shape[0], sup.data_ptr()
        dCp = _partial(u, b, sup_gc, s.length, n)
        a.dCp, a.sdCp[:] = dCp.data_ptr(), dCp.stride()
        f32 = dict(dtype=torch.float32, device=u.device)
        dA = torch.empty((b, dim, n), **f32)
        dD = torch.empty((b, dim), **f32) if D is not None else None
        dbias = torch.empty((b, dim), **f32) if delta_bias is not None else None
        dh0 = torch.empty((b, dim, n), **f32) if initial_state is not None else None
        if s.b_time_invariant:
            dBti = torch.empty((b, dim, n), **f32)
            a.dBti = dBti.data_ptr()
        else:
            dBp = _partial(u, b, sup_gb, s.length, n)
            a.dBp, a.sdBp[:] = dBp.data_ptr(), dBp.stride()
        a.dA, a.dD, a.dbias, a.dh0 = dA.data_ptr(), _p(dD), _p(dbias), _p(dh0)
        _check(lib.seqmamba_cpu_scan_bwd(ctypes.byref(a)))

        dC = _reduce(dCp, sup_gc, s.c_groups).view(C.shape)
        dB = dBti.sum(0) if s.b_time_invariant else _reduce(dBp, sup_gb, s.b_groups).view(B.shape)
        return (du.to(u.dtype), ddelta.to(delta.dtype), dA.sum(0).to(A.dtype), dB.to(B.dtype),
                dC.to(C.dtype), None if D is None else dD.sum(0).to(D.dtype),
                None if dz is None else dz.to(z.dtype),
                None if dbias is None else dbias.sum(0).to(delta_bias.dtype),
                None if dh0 is None else dh0.to(initial_state.dtype), None, None, None)


def _partial(like: torch.Tensor, batch: int, sup_groups: list, length: int,
             nstate: int) -> torch.Tensor:
    """Buffer for the per-super-block channel sums of dB or dC, (batch, supers, state, length).

    Laid out (batch, supers, length, state) in memory: the kernel writes one step's state
    values together.  When the super-blocks are exactly the groups, it is the gradient itself.
    """
    buf = like.new_empty((batch, len(sup_groups), length, nstate), dtype=torch.float32)
    return buf.transpose(2, 3)


def _reduce(partial: torch.Tensor, sup_groups: list, groups: int) -> torch.Tensor:
    """Sum the super-blocks of each group: (batch, supers, N, L) -> (batch, groups, N, L)."""
    if sup_groups == list(range(groups)):
        return partial
    out = partial.new_zeros((partial.shape[0], groups) + tuple(partial.shape[2:]))
    return out.index_add_(1, torch.tensor(sup_groups, device=partial.device), partial)


def selective_scan_cpu(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                       shapes: ScanShapes, tile: int = DEFAULT_TILE):
    """Fused CPU selective scan (inputs already validated; float64 is not accepted).

    u, delta, z: (batch, dim, length); A: (dim, state); B: (batch, groups, state, length),
    (batch, state, length) or (dim, state); C likewise without the (dim, state) form;
    D, delta_bias: (dim,); initial_state: (batch, dim, state).  ``tile``: time steps between
    the states kept for the backward.
    Returns (out (batch, dim, length) in u's dtype, last_state (batch, dim, state) float32).
    """
    if int(tile) < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    return _CpuScanFn.apply(u, delta, A, B, C, D, z, delta_bias, initial_state,
                            bool(delta_softplus), shapes, int(tile))


def state_update_cpu(state: torch.Tensor, x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor,
                     B: torch.Tensor, C: torch.Tensor, D: Optional[torch.Tensor] = None,
                     z: Optional[torch.Tensor] = None, dt_bias: Optional[torch.Tensor] = None,
                     dt_softplus: bool = False) -> torch.Tensor:
    """One recurrent step in the fused kernel, updating ``state`` in place.

    state: (batch, dim, state) float32; x, dt, z: (batch, dim); A: (dim, state);
    B, C: (batch, state) or (batch, groups, state); D, dt_bias: (dim,).  Returns (batch, dim)
    in x's dtype.  A state that is not contiguous float32 is updated through a copy.
    """
    lib = _lib()
    batch, dim, n = state.shape
    B3 = B if B.dim() == 3 else B[:, None]
    C3 = C if C.dim() == 3 else C[:, None]
    work = state if (state.dtype == torch.float32 and state.is_contiguous()) \
        else state.float().contiguous()
    out = torch.empty((batch, dim), dtype=torch.float32, device=x.device)
    blocks = _blocks(dim, B3.shape[1], C3.shape[1])
    keep = [_dense(t) for t in (x, dt, A, B3, C3, D, z, dt_bias)]
    a = _StepArgs()
    a.batch, a.dim, a.nstate, a.softplus = batch, dim, n, int(dt_softplus)
    a.nthreads = _threads(batch * dim * n * 64)  # one step: parallel only for big batches
    a.n_blocks, a.blocks = blocks.shape[0], blocks.data_ptr()
    a.state, a.out = work.data_ptr(), out.data_ptr()
    for name, t in zip(("x", "dt", "A", "B", "C", "D", "z", "bias"), keep):
        setattr(a, name, _p(t))
    a.b_groups, a.c_groups = B3.shape[1], C3.shape[1]
    _check(lib.seqmamba_cpu_state_update(ctypes.byref(a)))
    if work is not state:
        state.copy_(work)
    return out if x.dtype == torch.float32 else out.to(x.dtype)


def causal_conv1d_cpu(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                      initial_state: Optional[torch.Tensor], silu: bool) -> torch.Tensor:
    """Causal depthwise convolution in the fused kernel, forward only (no autograd).

    x: (batch, dim, length), any strides; weight: (dim, width); bias: (dim,);
    initial_state: (batch, dim, width - 1), the inputs before step 0 (zeros when None).
    Returns out (batch, dim, length) in x's dtype, laid out (batch, length, dim) in memory, the
    layout the model's projections and the scan read fastest.
    """
    lib = _lib()
    batch, dim, length = x.shape
    x32, w32, b32, s32 = _f32(x), _dense(weight), _dense(bias), _dense(initial_state)
    out = x.new_empty((batch, length, dim), dtype=torch.float32).transpose(1, 2)
    a = _ConvArgs()
    a.batch, a.dim, a.length, a.width, a.silu = batch, dim, length, weight.shape[1], int(silu)
    a.nthreads = _threads(batch * dim * length * 4)
    a.tchunk, a.n_blocks = 4096, -(-dim // LANES)
    a.x, a.weight, a.bias, a.state = x32.data_ptr(), w32.data_ptr(), _p(b32), _p(s32)
    a.sx[:], a.out, a.sout[:] = x32.stride(), out.data_ptr(), out.stride()
    _check(lib.seqmamba_cpu_causal_conv1d(ctypes.byref(a)))
    return out if x.dtype == torch.float32 else out.to(x.dtype)


def roofline_gups(seconds: float = 1.0, threads: Optional[int] = None) -> float:
    """G state-updates/s of the kernel's arithmetic alone (registers only, no memory), on
    ``threads`` threads (default torch's): the ceiling the scan is measured against."""
    import time

    lib = _lib()
    threads = threads or torch.get_num_threads()
    items, steps = 4 * threads, 2048
    lib.seqmamba_cpu_roofline(items, steps, threads)  # warm up
    while True:
        t0 = time.perf_counter()
        lib.seqmamba_cpu_roofline(items, steps, threads)
        dt = time.perf_counter() - t0
        if dt >= seconds / 4 or steps > 1 << 26:
            break
        steps *= 2
    return items * steps * LANES * 16 / dt / 1e9
