"""Launchers for the Triton kernels in :mod:`seqmamba_kernels.triton_kernels` and their autograd glue.

Importing this module imports triton: set ``TRITON_INTERPRET=1`` before that to run the
kernels on CPU tensors (slowly; the tests do this on small shapes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import triton

from ._checks import ScanShapes
from .triton_kernels import _scan_bwd_kernel, _scan_fwd_kernel, _state_update_kernel


@dataclass(frozen=True)
class TileConfig:
    """Tile sizes of the scan kernels, chosen from outside (``selective_scan_triton(tiles=)``).

    block_d: channels per program, a power of two; shrunk to divide dim / groups, so that one
    program reads one B/C group, and each B/C tile is read dim / block_d times per batch row.
    block_l: time steps per tile (a power of two >= 16), capped at the padded length.
    num_warps: warps per program on a GPU (the interpreter ignores it).
    """

    block_d: int = 4
    block_l: int = 64
    num_warps: int = 4
    # None: reverse=True under the interpreter (fast there, and its semantics are known), the
    # flip-based reverse scan on GPUs until gpu_check.sh has shown reverse=True right there.
    reverse_via_flip: bool | None = None


DEFAULT_TILES = TileConfig()

# The configurations a GPU sweep times against the default, chosen from the static analysis
# (docs/kernels.md, "GPU static analysis"): larger channel blocks read B and C fewer times, and
# at state 16 each of these compiles for sm_90 without spilling registers in the forward or
# the backward (the default's flip-mode backward spills ~250 bytes per thread), but for 12
# bytes in block 4 x 32's fp32 backward, and block 32 x 16: a forward candidate (64 B/C reads
# per batch row at dim 2048 instead of 512) whose backward spills.  The default tiles with
# reverse=True scans spill 8 bytes where the flip spills 248, if the GPU lowering proves right
# (gpu_check.sh tests both).  The tests run every one under the interpreter (on a GPU, too, in
# gpu_check.sh), so any of them can become the default.
CANDIDATE_TILES = (
    DEFAULT_TILES,
    TileConfig(reverse_via_flip=False),
    TileConfig(block_d=4, block_l=32, num_warps=8),
    TileConfig(block_d=4, block_l=64, num_warps=8),
    TileConfig(block_d=8, block_l=32, num_warps=8),
    TileConfig(block_d=16, block_l=16, num_warps=8),
    TileConfig(block_d=16, block_l=32, num_warps=8),
    TileConfig(block_d=32, block_l=16, num_warps=8),
)


def _block_d(cfg_block: int, shapes: ScanShapes) -> int:
    """Largest power of two <= cfg_block that keeps each program inside one B/C group."""
    block = cfg_block
    for groups in (shapes.b_groups, shapes.c_groups):
        if groups > 1:
            per = shapes.dim // groups
            while per % block:
                block //= 2
    return max(block, 1)


def _reverse_via_flip(cfg: TileConfig, device: torch.device) -> bool:
    if cfg.reverse_via_flip is not None:
        return cfg.reverse_via_flip
    return device.type == "cuda"


def _bc_strides(t: torch.Tensor, time_invariant: bool) -> tuple:
    if time_invariant:
        return (0, 0, 0, 0)
    return tuple(t.stride())


def _launch_meta(shapes: ScanShapes, cfg: TileConfig):
    block_d = _block_d(cfg.block_d, shapes)
    block_n = triton.next_power_of_2(shapes.state)
    block_l = min(cfg.block_l, max(16, triton.next_power_of_2(shapes.length)))
    n_tiles = triton.cdiv(shapes.length, block_l)
    grid = (shapes.batch, triton.cdiv(shapes.dim, block_d))
    return block_d, block_n, block_l, n_tiles, grid


class Launch(NamedTuple):
    """One kernel launch as data: ``kernel[grid](*args, **meta)``.  The launchers below run
    it; the static analysis (benchmarks/gpu_static.py) compiles the same arguments ahead of
    time, so both see one specialisation."""

    kernel: object
    grid: tuple
    args: tuple
    meta: dict

    def __call__(self):
        self.kernel[self.grid](*self.args, **self.meta)


def fwd_launch(u, delta, A, B, C, D, z, delta_bias, h0, out, last, states, softplus: bool,
               shapes: ScanShapes, cfg: TileConfig) -> Launch:
    """The forward kernel's launch on contiguous inputs; ``states`` is ``last`` when the
    per-tile states are not kept (no backward to follow)."""
    s = shapes
    block_d, block_n, block_l, n_tiles, grid = _launch_meta(s, cfg)
    args = (u, delta, A, B, C,
            D if D is not None else u, z if z is not None else u,
            delta_bias if delta_bias is not None else u, h0 if h0 is not None else u,
            out, last, states,
            s.dim, s.length, s.state, s.dim // s.b_groups, s.dim // s.c_groups, n_tiles,
            *u.stride(), *_bc_strides(B, s.b_time_invariant), *C.stride())
    meta = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                HAS_H0=h0 is not None, SOFTPLUS=bool(softplus), B_TI=s.b_time_invariant,
                STORE_STATES=states is not last, BLOCK_D=block_d, BLOCK_N=block_n,
                BLOCK_L=block_l, num_warps=cfg.num_warps)
    return Launch(_scan_fwd_kernel, grid, args, meta)


def bwd_launch(u, delta, A, B, C, D, z, delta_bias, states, dout, dlast, grads: dict,
               softplus: bool, shapes: ScanShapes, cfg: TileConfig, via_flip: bool) -> Launch:
    """The backward kernel's launch; ``grads`` holds the output buffers du, ddelta, dz, dA,
    dB, dC, dD, dbias, dh0 (dz, dD, dbias None when absent; dA..dbias float32, zeroed)."""
    s, g = shapes, grads
    block_d, block_n, block_l, n_tiles, grid = _launch_meta(s, cfg)
    args = (u, delta, A, B, C,
            D if D is not None else u, z if z is not None else u,
            delta_bias if delta_bias is not None else u, states,
            dout, dlast if dlast is not None else u,
            g["du"], g["ddelta"], g["dz"] if g["dz"] is not None else g["du"], g["dA"], g["dB"],
            g["dC"], g["dD"] if g["dD"] is not None else g["dA"],
            g["dbias"] if g["dbias"] is not None else g["dA"], g["dh0"],
            s.dim, s.length, s.state, s.dim // s.b_groups, s.dim // s.c_groups, n_tiles,
            *u.stride(), *_bc_strides(B, s.b_time_invariant), *C.stride())
    meta = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                HAS_DLAST=dlast is not None, SOFTPLUS=bool(softplus), B_TI=s.b_time_invariant,
                REVERSE_VIA_FLIP=bool(via_flip), BLOCK_D=block_d, BLOCK_N=block_n,
                BLOCK_L=block_l, num_warps=cfg.num_warps)
    return Launch(_scan_bwd_kernel, grid, args, meta)


class _TritonScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, initial_state, softplus, shapes, cfg):
        s: ScanShapes = shapes
        u, delta, A, B, C = (t.contiguous() for t in (u, delta, A, B, C))
        z = z.contiguous() if z is not None else None
        n_tiles = _launch_meta(s, cfg)[3]
        out = torch.empty_like(u)
        last = torch.empty((s.batch, s.dim, s.state), dtype=torch.float32, device=u.device)
        keep = any(ctx.needs_input_grad)
        states = (torch.empty((s.batch, s.dim, n_tiles, s.state), dtype=torch.float32,
                              device=u.device) if keep else last)
        h0 = initial_state.contiguous() if initial_state is not None else None
        fwd_launch(u, delta, A, B, C, D, z, delta_bias, h0, out, last, states, softplus, s,
                   cfg)()
        if keep:
            ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, initial_state, states)
            ctx.cfg = (s, softplus, cfg)
        return out, last

    @staticmethod
    def backward(ctx, grad_out, grad_last):
        u, delta, A, B, C, D, z, delta_bias, initial_state, states = ctx.saved_tensors
        s, softplus, cfg = ctx.cfg
        dout = grad_out.contiguous() if grad_out is not None else torch.zeros_like(u)
        dlast = grad_last.contiguous() if grad_last is not None else None
        g = grad_buffers(u, delta, B, C, D, z, delta_bias, s)
        bwd_launch(u, delta, A, B, C, D, z, delta_bias, states, dout, dlast, g, softplus, s,
                   cfg, _reverse_via_flip(cfg, u.device))()
        return (g["du"], g["ddelta"], g["dA"].to(A.dtype), g["dB"].to(B.dtype),
                g["dC"].to(C.dtype), g["dD"].to(D.dtype) if D is not None else None, g["dz"],
                g["dbias"].to(delta_bias.dtype) if delta_bias is not None else None,
                g["dh0"].to(initial_state.dtype) if initial_state is not None else None,
                None, None, None)


def grad_buffers(u, delta, B, C, D, z, delta_bias, shapes: ScanShapes) -> dict:
    """The backward kernel's outputs: du, ddelta, dz in the inputs' dtypes; dA, dB, dC, dD,
    dbias float32 and zeroed (accumulated atomically, cast at the end); dh0 float32."""
    s = shapes
    f32 = dict(dtype=torch.float32, device=u.device)
    return dict(
        du=torch.empty_like(u), ddelta=torch.empty_like(delta),
        dz=torch.empty_like(z) if z is not None else None,
        dA=torch.zeros((s.dim, s.state), **f32), dB=torch.zeros(B.shape, **f32),
        dC=torch.zeros(C.shape, **f32),
        dD=torch.zeros(s.dim, **f32) if D is not None else None,
        dbias=torch.zeros(s.dim, **f32) if delta_bias is not None else None,
        dh0=torch.empty((s.batch, s.dim, s.state), **f32))


def selective_scan_triton(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                          shapes: ScanShapes, tiles: TileConfig = DEFAULT_TILES):
    """Fused Triton selective scan (inputs already validated by ``seqmamba_kernels.selective_scan``).

    u, delta, z: (batch, dim, length); A: (dim, state); B: (batch, state, length),
    (batch, groups, state, length) or (dim, state); C: (batch, [groups,] state, length);
    D, delta_bias: (dim,); initial_state: (batch, dim, state).
    Returns (out (batch, dim, length) in u's dtype, last_state (batch, dim, state) float32).
    """
    if B.dim() == 3:
        B = B[:, None]
    if C.dim() == 3:
        C = C[:, None]
    return _TritonScanFn.apply(u, delta, A, B, C, D, z, delta_bias, initial_state,
                               bool(delta_softplus), shapes, tiles)


def state_update_launch(state, x, dt, A, B, C, D, z, dt_bias, out, dt_softplus: bool,
                        block_d: int = 16, num_warps: int = 4) -> Launch:
    """The one-step kernel's launch on contiguous inputs, B and C as (batch, groups, state)."""
    batch, dim, nstate = state.shape
    block_d = min(block_d, triton.next_power_of_2(dim))
    grid = (batch, triton.cdiv(dim, block_d))
    args = (state, x, dt, A, B, C,
            D if D is not None else x, z if z is not None else x,
            dt_bias if dt_bias is not None else x, out,
            dim, nstate, dim // B.shape[1], dim // C.shape[1],
            B.stride(0), B.stride(1), C.stride(0), C.stride(1))
    meta = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=dt_bias is not None,
                SOFTPLUS=bool(dt_softplus), BLOCK_D=block_d,
                BLOCK_N=triton.next_power_of_2(nstate), num_warps=num_warps)
    return Launch(_state_update_kernel, grid, args, meta)


def selective_state_update_triton(state, x, dt, A, B, C, D=None, z=None, dt_bias=None,
                                  dt_softplus=False, block_d: int = 16, num_warps: int = 4):
    """One recurrent step in a Triton kernel, updating ``state`` in place (validated inputs).

    state: (batch, dim, state); x, dt, z: (batch, dim); A: (dim, state);
    B, C: (batch, state) or (batch, groups, state); D, dt_bias: (dim,).
    ``block_d`` channels per program and ``num_warps`` are the kernel's tile choice.
    Returns out (batch, dim) in x's dtype.
    """
    B = (B[:, None] if B.dim() == 2 else B).contiguous()
    C = (C[:, None] if C.dim() == 2 else C).contiguous()
    x, dt, A = x.contiguous(), dt.contiguous(), A.contiguous()
    z = z.contiguous() if z is not None else None
    work = state if state.is_contiguous() else state.contiguous()
    out = torch.empty_like(x)
    state_update_launch(work, x, dt, A, B, C, D, z, dt_bias, out, dt_softplus, block_d,
                        num_warps)()
    if work is not state:
        state.copy_(work)
    return out
