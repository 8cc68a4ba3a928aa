"""Launchers for the Triton kernels in :mod:`seqmamba_kernels.triton_kernels` and their autograd glue.

Importing this module imports triton: set ``TRITON_INTERPRET=1`` before that to run the
kernels on CPU tensors (slowly; the tests do this on small shapes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton

from ._checks import ScanShapes
from .triton_kernels import _scan_bwd_kernel, _scan_fwd_kernel, _state_update_kernel


@dataclass(frozen=True)
class TileConfig:
    """Tile sizes of the scan kernels; BLOCK_D is shrunk to divide dim / groups."""

    block_d: int = 4
    block_l: int = 64
    num_warps: int = 4
    # None: reverse=True under the interpreter (fast there, and its semantics are known), the
    # flip-based reverse scan on GPUs until gpu_check.sh has shown reverse=True right there.
    reverse_via_flip: bool | None = None


DEFAULT_TILES = TileConfig()


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


class _TritonScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, initial_state, softplus, shapes, cfg):
        s: ScanShapes = shapes
        u, delta, A, B, C = (t.contiguous() for t in (u, delta, A, B, C))
        z = z.contiguous() if z is not None else None
        block_d, block_n, block_l, n_tiles, grid = _launch_meta(s, cfg)
        out = torch.empty_like(u)
        last = torch.empty((s.batch, s.dim, s.state), dtype=torch.float32, device=u.device)
        keep = any(ctx.needs_input_grad)
        states = (torch.empty((s.batch, s.dim, n_tiles, s.state), dtype=torch.float32,
                              device=u.device) if keep else last)
        h0 = initial_state.contiguous() if initial_state is not None else None
        _scan_fwd_kernel[grid](
            u, delta, A, B, C,
            D if D is not None else u, z if z is not None else u,
            delta_bias if delta_bias is not None else u, h0 if h0 is not None else u,
            out, last, states,
            s.dim, s.length, s.state, s.dim // s.b_groups, s.dim // s.c_groups, n_tiles,
            *u.stride(), *_bc_strides(B, s.b_time_invariant), *C.stride(),
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            HAS_H0=h0 is not None, SOFTPLUS=softplus, B_TI=s.b_time_invariant,
            STORE_STATES=keep, BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_L=block_l,
            num_warps=cfg.num_warps,
        )
        if keep:
            ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, initial_state, states)
            ctx.cfg = (s, softplus, cfg)
        return out, last

    @staticmethod
    def backward(ctx, grad_out, grad_last):
        u, delta, A, B, C, D, z, delta_bias, initial_state, states = ctx.saved_tensors
        s, softplus, cfg = ctx.cfg
        block_d, block_n, block_l, n_tiles, grid = _launch_meta(s, cfg)
        f32 = dict(dtype=torch.float32, device=u.device)
        dout = grad_out.contiguous() if grad_out is not None else torch.zeros_like(u)
        dlast = grad_last.contiguous() if grad_last is not None else None
        du = torch.empty_like(u)
        ddelta = torch.empty_like(delta)
        dz = torch.empty_like(z) if z is not None else None
        dA = torch.zeros((s.dim, s.state), **f32)
        dB = torch.zeros(B.shape, **f32)  # accumulated atomically, cast at the end
        dC = torch.zeros(C.shape, **f32)
        dD = torch.zeros(s.dim, **f32) if D is not None else None
        dbias = torch.zeros(s.dim, **f32) if delta_bias is not None else None
        dh0 = torch.empty((s.batch, s.dim, s.state), **f32)
        _scan_bwd_kernel[grid](
            u, delta, A, B, C,
            D if D is not None else u, z if z is not None else u,
            delta_bias if delta_bias is not None else u, states,
            dout, dlast if dlast is not None else u,
            du, ddelta, dz if dz is not None else du, dA, dB, dC,
            dD if dD is not None else dA, dbias if dbias is not None else dA, dh0,
            s.dim, s.length, s.state, s.dim // s.b_groups, s.dim // s.c_groups, n_tiles,
            *u.stride(), *_bc_strides(B, s.b_time_invariant), *C.stride(),
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            HAS_DLAST=dlast is not None, SOFTPLUS=softplus, B_TI=s.b_time_invariant,
            REVERSE_VIA_FLIP=_reverse_via_flip(cfg, u.device), BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_L=block_l, num_warps=cfg.num_warps,
        )
        return (du, ddelta, dA.to(A.dtype), dB.to(B.dtype), dC.to(C.dtype),
                dD.to(D.dtype) if D is not None else None, dz,
                dbias.to(delta_bias.dtype) if delta_bias is not None else None,
                dh0.to(initial_state.dtype) if initial_state is not None else None,
                None, None, None)


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


def selective_state_update_triton(state, x, dt, A, B, C, D=None, z=None, dt_bias=None,
                                  dt_softplus=False, block_d: int = 16):
    """One recurrent step in a Triton kernel, updating ``state`` in place (validated inputs).

    state: (batch, dim, state); x, dt, z: (batch, dim); A: (dim, state);
    B, C: (batch, state) or (batch, groups, state); D, dt_bias: (dim,).
    Returns out (batch, dim) in x's dtype.
    """
    batch, dim, nstate = state.shape
    B = (B[:, None] if B.dim() == 2 else B).contiguous()
    C = (C[:, None] if C.dim() == 2 else C).contiguous()
    x, dt, A = x.contiguous(), dt.contiguous(), A.contiguous()
    z = z.contiguous() if z is not None else None
    work = state if state.is_contiguous() else state.contiguous()
    out = torch.empty_like(x)
    block_d = min(block_d, triton.next_power_of_2(dim))
    grid = (batch, triton.cdiv(dim, block_d))
    _state_update_kernel[grid](
        work, x, dt, A, B, C,
        D if D is not None else x, z if z is not None else x,
        dt_bias if dt_bias is not None else x, out,
        dim, nstate, dim // B.shape[1], dim // C.shape[1],
        B.stride(0), B.stride(1), C.stride(0), C.stride(1),
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=dt_bias is not None,
        SOFTPLUS=bool(dt_softplus), BLOCK_D=block_d, BLOCK_N=triton.next_power_of_2(nstate),
    )
    if work is not state:
        state.copy_(work)
    return out
