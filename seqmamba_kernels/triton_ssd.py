"""The Mamba-2 scan (SSD) on Triton: launchers for :mod:`seqmamba_kernels.triton_ssd_kernels`
and their autograd glue.

What runs where: the time step (bias, softplus) and its per-chunk cumulative sum of dt A are
torch ops under autograd (small: batch x heads x length); the chunk states, the state passing
over chunks, the outputs (with D x and the z gate) and every heavy gradient are Triton
kernels; the gate's and D's gradients are torch elementwise ops.  The backward of the cumsum,
A, the bias and softplus is torch's autograd on those small tensors.

Importing this module imports triton: set ``TRITON_INTERPRET=1`` before that to run the
kernels on CPU tensors (slowly; the tests do this on small shapes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import triton

from .dispatch import triton_interpreted
from .ssd import _time_step
from .triton_scan import Launch
from .triton_ssd_kernels import (_chunk_bwd, _chunk_out_fwd, _chunk_state_fwd, _dstate_out_bwd,
                                 _state_pass_bwd, _state_pass_fwd)


@dataclass(frozen=True)
class SSDTiles:
    """Tile sizes of the SSD kernels, chosen from outside (``ssd_scan_triton(tiles=)``).

    block_p: head_dim channels per program of the forward and dstate kernels (the chunk
    backward takes the whole head_dim: its dt and decay gradients sum over it).
    block_n: states per program of the chunk-state kernels, and per step of the loops over
    the state elsewhere.  block_pn: state elements per program of the two sequential
    state-passing kernels.  Each is capped at the padded size and kept >= 16 (tl.dot's least).
    num_warps / bwd_num_warps: warps of the forward kernels / of the chunk backward.
    fp32_dot: tl.dot's input_precision for float32 inputs: "ieee" (exact) or "tf32".

    The defaults come from compiling for sm_90 (benchmarks/gpu_static.py, head_dim 64, state
    128, chunk 64), not from GPU timings: block_n 32 at 8 warps is the one tried (block_n
    16/32/64, 4/8 warps) where no kernel spills registers but the fp32 chunk backward.
    """

    block_p: int = 64
    block_n: int = 32
    block_pn: int = 1024
    num_warps: int = 8
    bwd_num_warps: int = 8
    fp32_dot: str = "ieee"


DEFAULT_SSD_TILES = SSDTiles()


@dataclass(frozen=True)
class SSDShapes:
    """Sizes of one SSD call: chunk is the chunk length Q, n_chunks = ceil(length / Q)."""

    batch: int
    length: int
    heads: int
    head_dim: int
    groups: int
    state: int
    chunk: int

    @property
    def n_chunks(self) -> int:
        return triton.cdiv(self.length, self.chunk)


def _pow2(n: int, cap: int | None = None) -> int:
    """next_power_of_2(n), at least 16 (tl.dot's least dimension), at most ``cap`` (>= 16)."""
    block = max(16, triton.next_power_of_2(n))
    return min(block, max(16, cap)) if cap else block


def _dims(s: SSDShapes):
    # the runtime sizes every chunk kernel takes, in its argument order
    return (s.length, s.heads, s.groups, s.head_dim, s.state, s.n_chunks, s.chunk,
            s.heads // s.groups)


def _dot_prec(x: torch.Tensor, t: SSDTiles) -> str:
    """tl.dot's input_precision, or "emulate" for bf16 under the interpreter (see _mm)."""
    if x.dtype == torch.bfloat16 and triton_interpreted():
        return "emulate"
    return t.fp32_dot


def _blocks(s: SSDShapes, t: SSDTiles):
    return _pow2(s.chunk), _pow2(s.head_dim, t.block_p), _pow2(s.state, t.block_n)


def chunk_state_launch(x, B, dt, a, states, s: SSDShapes, t: SSDTiles) -> Launch:
    """states (b, h, nc, p, n) float32 <- each chunk's own contribution to the state."""
    bq, bp, bn = _blocks(s, t)
    n_p, n_n = triton.cdiv(s.head_dim, bp), triton.cdiv(s.state, bn)
    return Launch(_chunk_state_fwd, (s.batch * s.heads, s.n_chunks, n_p * n_n),
                  (x, B, dt, a, states, *_dims(s), n_p),
                  dict(BLOCK_Q=bq, BLOCK_P=bp, BLOCK_N=bn, DOT_PREC=_dot_prec(x, t),
                       num_warps=t.num_warps))


def state_pass_launch(states, a, h0, final, s: SSDShapes, t: SSDTiles) -> Launch:
    """states[c] <- the state entering chunk c (in place); final (b, h, p, n) float32."""
    pn = s.head_dim * s.state
    block = min(t.block_pn, triton.next_power_of_2(pn))
    return Launch(_state_pass_fwd, (s.batch * s.heads, triton.cdiv(pn, block)),
                  (states, a, h0 if h0 is not None else final, final, s.n_chunks, s.chunk, pn),
                  dict(HAS_H0=h0 is not None, BLOCK=block, num_warps=t.num_warps))


def chunk_out_launch(x, B, C, states, dt, a, D, z, out, pre, s: SSDShapes,
                     t: SSDTiles) -> Launch:
    """out (b, L, h, p) in x's dtype; ``pre`` the output before the z gate, or None."""
    bq, bp, bn = _blocks(s, t)
    return Launch(_chunk_out_fwd,
                  (s.batch * s.heads, s.n_chunks, triton.cdiv(s.head_dim, bp)),
                  (x, B, C, states, dt, a, D if D is not None else x,
                   z if z is not None else x, out, pre if pre is not None else out, *_dims(s)),
                  dict(HAS_D=D is not None, D_PER_CHANNEL=D is not None and D.dim() == 2,
                       HAS_Z=z is not None, STORE_PRE=pre is not None, BLOCK_Q=bq,
                       BLOCK_P=bp, BLOCK_N=bn, DOT_PREC=_dot_prec(x, t), num_warps=t.num_warps))


def dstate_out_launch(g, C, a, dstates, s: SSDShapes, t: SSDTiles) -> Launch:
    """dstates (b, h, nc, p, n) float32 <- the outputs' gradient on each chunk's entering state."""
    bq, bp, bn = _blocks(s, t)
    n_p, n_n = triton.cdiv(s.head_dim, bp), triton.cdiv(s.state, bn)
    return Launch(_dstate_out_bwd, (s.batch * s.heads, s.n_chunks, n_p * n_n),
                  (g, C, a, dstates, *_dims(s), n_p),
                  dict(BLOCK_Q=bq, BLOCK_P=bp, BLOCK_N=bn, DOT_PREC=_dot_prec(g, t),
                       num_warps=t.num_warps))


def state_pass_bwd_blocks(s: SSDShapes, t: SSDTiles) -> tuple[int, int]:
    """(block, number of blocks) of the backward state passing over head_dim x state."""
    pn = s.head_dim * s.state
    block = min(t.block_pn, triton.next_power_of_2(pn))
    return block, triton.cdiv(pn, block)


def state_pass_bwd_launch(dstates, states, a, dfinal, dh0, dlast, s: SSDShapes,
                          t: SSDTiles) -> Launch:
    """dstates[c] <- dL/dS_c (in place); dh0 (b, h, p, n); dlast (b, h, nc, blocks) partial
    sums of dL/d a_last[c]."""
    block, n_blocks = state_pass_bwd_blocks(s, t)
    return Launch(_state_pass_bwd, (s.batch * s.heads, n_blocks),
                  (dstates, states, a, dfinal if dfinal is not None else dh0, dh0, dlast,
                   s.n_chunks, s.chunk, s.head_dim * s.state),
                  dict(HAS_DFINAL=dfinal is not None, BLOCK=block, num_warps=t.num_warps))


def chunk_bwd_launch(x, B, C, states, dstates, dt, a, g, dx, dB, dC, ddt, da, s: SSDShapes,
                     t: SSDTiles) -> Launch:
    """dx (b, L, h, p), ddt, da (b, h, nc, Q) float32 written; dB, dC (b, L, groups, n)
    float32, zeroed, accumulated."""
    bq, _, bn = _blocks(s, t)
    return Launch(_chunk_bwd, (s.batch * s.heads, s.n_chunks),
                  (x, B, C, states, dstates, dt, a, g, dx, dB, dC, ddt, da, *_dims(s)),
                  dict(BLOCK_Q=bq, BLOCK_P=_pow2(s.head_dim), BLOCK_N=bn,
                       DOT_PREC=_dot_prec(x, t), num_warps=t.bwd_num_warps))


class _TritonSSDFn(torch.autograd.Function):
    """(x, dt, a, B, C, D, z, h0) -> (out, final state).  dt and a: (b, h, nc, Q) float32,
    the time step and its per-chunk cumsum of dt A, both zero-padded past the end (so padded
    steps neither decay nor add); autograd carries their gradients on to dt, A, the bias."""

    @staticmethod
    def forward(ctx, x, dt, a, B, C, D, z, h0, s: SSDShapes, tiles: SSDTiles, keep: bool):
        # keep: a backward will follow (the caller knows: inside forward grad mode is off, and
        # needs_input_grad is set even under torch.no_grad)
        f32 = dict(dtype=torch.float32, device=x.device)
        b, h, p, n = s.batch, s.heads, s.head_dim, s.state
        states = torch.empty((b, h, s.n_chunks, p, n), **f32)
        final = torch.empty((b, h, p, n), **f32)
        chunk_state_launch(x, B, dt, a, states, s, tiles)()
        state_pass_launch(states, a, h0, final, s, tiles)()
        out = torch.empty_like(x)
        pre = torch.empty_like(x) if keep and z is not None else None
        chunk_out_launch(x, B, C, states, dt, a, D, z, out, pre, s, tiles)()
        if keep:
            ctx.save_for_backward(x, dt, a, B, C, D, z, h0, states, pre)
            ctx.cfg = (s, tiles)
        return out, final

    @staticmethod
    def backward(ctx, dout, dfinal):
        x, dt, a, B, C, D, z, h0, states, pre = ctx.saved_tensors
        s, tiles = ctx.cfg
        f32 = dict(dtype=torch.float32, device=x.device)
        g = dout.float() if dout is not None else torch.zeros(x.shape, **f32)
        dz = None
        if z is not None:  # out = pre * silu(z)
            zf = z.float()
            sz = torch.sigmoid(zf)
            dz = (g * pre.float() * sz * (1 + zf * (1 - sz))).to(z.dtype)
            g = g * zf * sz
        dD = None
        if D is not None:
            gx = g * x.float()
            dD = (gx.sum((0, 1)) if D.dim() == 2 else gx.sum((0, 1, 3))).to(D.dtype)
        gk = g.to(x.dtype).contiguous()  # the kernels' products run in x's dtype
        nc, Q = s.n_chunks, s.chunk
        dstates = torch.empty_like(states)
        dstate_out_launch(gk, C, a, dstates, s, tiles)()
        dh0 = torch.empty((s.batch, s.heads, s.head_dim, s.state), **f32)
        dlast = torch.empty((s.batch, s.heads, nc, state_pass_bwd_blocks(s, tiles)[1]), **f32)
        state_pass_bwd_launch(dstates, states, a,
                              dfinal.contiguous() if dfinal is not None else None, dh0, dlast,
                              s, tiles)()
        dx = torch.empty(x.shape, **f32)
        dB, dC = torch.zeros(B.shape, **f32), torch.zeros(C.shape, **f32)
        ddt, da = torch.empty((s.batch, s.heads, nc, Q), **f32), torch.empty_like(a)
        chunk_bwd_launch(x, B, C, states, dstates, dt, a, gk, dx, dB, dC, ddt, da, s, tiles)()
        da[..., Q - 1] += dlast.sum(-1)  # the state passing's decay exp(a_last)
        if D is not None:
            dx += g * (D.float() if D.dim() == 2 else D.float()[:, None])
        return (dx.to(x.dtype), ddt, da, dB.to(B.dtype), dC.to(C.dtype), dD, dz,
                dh0.to(h0.dtype) if h0 is not None else None, None, None, None)


def ssd_scan_triton(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
                    initial_state=None, chunk_size: int = 64,
                    tiles: SSDTiles = DEFAULT_SSD_TILES):
    """The SSD scan on Triton (inputs validated by ``seqmamba_kernels.ssd_scan``).

    x, z: (batch, length, heads, head_dim); dt: (batch, length, heads); A, dt_bias: (heads,);
    B, C: (batch, length, groups, state); D: (heads,) or (heads, head_dim);
    initial_state: (batch, heads, head_dim, state).  Returns (y (batch, length, heads,
    head_dim) in x's dtype, final state (batch, heads, head_dim, state) float32).
    """
    b, L, h, p = x.shape
    s = SSDShapes(b, L, h, p, B.shape[2], B.shape[3], int(chunk_size))
    nc, Q = s.n_chunks, s.chunk
    # (b, L, h) -> (b, h, nc, Q), zero past the end: padded steps have dt = 0 (no decay, no
    # input), so the last chunk's a_last, its state and the final state ignore them
    dtp = F.pad(_time_step(dt, dt_bias, dt_softplus, torch.float32), (0, 0, 0, nc * Q - L))
    dtp = dtp.reshape(b, nc, Q, h).permute(0, 3, 1, 2).contiguous()
    a = torch.cumsum(dtp * A.float()[:, None, None], dim=-1)
    tensors = (x, dt, A, B, C, D, z, dt_bias, initial_state)
    keep = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    cont = (lambda t: t.contiguous() if t is not None else None)  # noqa: E731
    return _TritonSSDFn.apply(x.contiguous(), dtp, a, B.contiguous(), C.contiguous(), cont(D),
                              cont(z), cont(initial_state), s, tiles, keep)
