"""The Mamba-2 scan (SSD, "state space duality", Dao & Gu 2024): a reference loop and the
chunked matmul form.

Mamba-2's decay is one scalar per head and time step, so within a chunk of Q steps the scan is
a masked, decay-weighted attention-like product (GEMMs), and across chunks a short recurrence
on the chunk states.  Shapes follow mamba-ssm's ``mamba_chunk_scan_combined``::

    x:  (batch, length, heads, head_dim)      z: same (optional gate: y * silu(z))
    dt: (batch, length, heads)                 dt_bias: (heads,)
    A:  (heads,)  (negative: A = -exp(A_log))  D: (heads,) or (heads, head_dim)
    B, C: (batch, length, groups, state)      heads use group h // (heads / groups)
    initial_state, final state: (batch, heads, head_dim, state)

Per head h, channel p and state n::

    dt_t = softplus(dt_t + dt_bias)            (or dt_t + dt_bias)
    H_t  = exp(dt_t A_h) H_{t-1} + dt_t x_t B_t^T,   H_{-1} = initial_state or 0
    y_t  = H_t C_t + D x_t,   then y_t * silu(z_t)

Both functions return y (batch, length, heads, head_dim) in x's dtype and, with
``return_final_state``, H_{length-1} in float32 (float64 for float64 inputs).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

DEFAULT_CHUNK = 64  # chunk length of the matmul form (see benchmarks/ssd_speed.py)


def check_ssd_args(x, dt, A, B, C, D=None, z=None, dt_bias=None, initial_state=None):
    """Validate shapes once, naming the argument; returns (batch, length, heads, head_dim,
    groups, state)."""
    if x.dim() != 4:
        raise ValueError(f"x must be (batch, length, heads, head_dim), got shape {tuple(x.shape)}")
    b, L, h, p = x.shape
    if B.dim() != 4 or B.shape[:2] != (b, L):
        raise ValueError(f"B must be (batch={b}, length={L}, groups, state), got {tuple(B.shape)}")
    g, n = B.shape[2:]
    want = {"dt": (dt, (b, L, h)), "A": (A, (h,)), "C": (C, (b, L, g, n)), "z": (z, (b, L, h, p)),
            "dt_bias": (dt_bias, (h,)), "initial_state": (initial_state, (b, h, p, n))}
    for name, (t, shape) in want.items():
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if D is not None and tuple(D.shape) not in ((h,), (h, p)):
        raise ValueError(f"D must be (heads={h},) or (heads, head_dim={p}), got {tuple(D.shape)}")
    if h % g:
        raise ValueError(f"heads ({h}) must be a multiple of groups ({g})")
    return b, L, h, p, g, n


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _time_step(dt, dt_bias, dt_softplus, cdt):
    dt = dt.to(cdt)
    if dt_bias is not None:
        dt = dt + dt_bias.to(cdt)
    return F.softplus(dt) if dt_softplus else dt


def _finish(y, x, D, z, cdt):
    """y (b, L, h, p) in cdt -> + D x, gated by silu(z), in x's dtype."""
    if D is not None:
        Dc = D.to(cdt)
        y = y + x.to(cdt) * (Dc[:, None] if Dc.dim() == 1 else Dc)
    if z is not None:
        y = y * F.silu(z.to(cdt))
    return y.to(x.dtype)


def ssd_scan_ref(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
                 initial_state=None, return_final_state=False):
    """The scan one time step at a time (the oracle; float64-exact on float64 inputs)."""
    b, L, h, p, g, n = check_ssd_args(x, dt, A, B, C, D, z, dt_bias, initial_state)
    cdt = _compute_dtype(x.dtype)
    dtc = _time_step(dt, dt_bias, dt_softplus, cdt)
    r = h // g
    Bh = B.to(cdt).repeat_interleave(r, dim=2)  # (b, L, h, n)
    Ch = C.to(cdt).repeat_interleave(r, dim=2)
    xc, Ac = x.to(cdt), A.to(cdt)
    H = initial_state.to(cdt) if initial_state is not None else xc.new_zeros(b, h, p, n)
    ys = []
    for x_t, dt_t, B_t, C_t in zip(xc.unbind(1), dtc.unbind(1), Bh.unbind(1), Ch.unbind(1)):
        H = (torch.exp(dt_t * Ac)[..., None, None] * H
             + (dt_t[..., None] * x_t)[..., None] * B_t[:, :, None, :])
        ys.append((H * C_t[:, :, None, :]).sum(-1))
    y = _finish(torch.stack(ys, dim=1), x, D, z, cdt)
    return (y, H) if return_final_state else y


# The factored form below multiplies exp(a_i - m) by exp(m - a_j), |a - m| <= half the span.
# Past this span the two terms would leave float32's range (e^40 ~ 2e17 each way, headroom for
# the sums over the chunk), so those (chunk, head) slices take the direct form.
FACTORED_SPAN = 80.0


def _direct(a, dt, x, CB, causal):
    """The within-chunk outputs in the direct form: a (Q x Q) decay matrix per slice.
    a, dt: (..., Q); x: (..., Q, p); CB: (..., Q, Q), broadcast over the leading dims ->
    (..., Q, p)."""
    seg = torch.where(causal, a[..., :, None] - a[..., None, :], float("-inf"))
    return torch.matmul(CB * torch.exp(seg) * dt[..., None, :], x)


def _within_chunks(a, dt, x, B, C):
    """The outputs of each chunk's own inputs.  a: (b, c, Q, g, r) log decay since the chunk
    began; dt: same; x: (b, c, Q, g, r, p); B, C: (b, c, Q, g, n) -> (b, c, Q, g, r, p), all
    in the compute dtype.

    y_i = sum_{j <= i} <C_i, B_j> exp(a_i - a_j) dt_j x_j.  The decay factors into a row and a
    column term around the middle m of the slice's range: exp(a_i - m) exp(m - a_j).  Then the
    masked C B^T is one (Q x Q) matrix per group, shared by the group's r heads, and the product
    with the heads' (dt exp(m - a) x) is one GEMM of width r p.  The direct form (``_direct``)
    builds a (Q x Q) decay matrix per head instead, and spent most of its time on those
    elementwise passes.  Slices spanning more than FACTORED_SPAN are recomputed in the direct
    form; their factored terms are clamped first, so that no inf reaches the GEMM or its
    gradient."""
    b, c, Q, g, r = a.shape
    causal = torch.ones(Q, Q, dtype=torch.bool, device=a.device).tril()
    # autocast off: fp16 products would overflow the factored terms (they stay float32 here)
    with torch.autocast(a.device.type, enabled=False):
        CB = torch.einsum("bcign,bcjgn->bcgij", C, B)
        hi, lo = a.amax(dim=2, keepdim=True), a.amin(dim=2, keepdim=True)
        wide = (hi - lo)[:, :, 0] > FACTORED_SPAN  # (b, c, g, r)
        n_wide = int(wide.sum())  # the one host sync
        at, dtt = a.permute(0, 1, 3, 4, 2), dt.permute(0, 1, 3, 4, 2)  # (b, c, g, r, Q)
        xt = x.permute(0, 1, 3, 4, 2, 5)  # (b, c, g, r, Q, p)
        if n_wide and n_wide == wide.numel():  # every slice: no factored pass at all
            return _direct(at, dtt, xt, CB[:, :, :, None], causal).permute(0, 1, 4, 2, 3, 5)
        m = (0.5 * (hi + lo)).detach()  # any m is exact; it only keeps the terms in range
        half = FACTORED_SPAN / 2
        col = torch.exp((m - a).clamp(-half, half)) * dt
        xv = (x * col[..., None]).reshape(b, c, Q, g, r * x.shape[-1]).transpose(2, 3)
        y = torch.matmul(CB.masked_fill(~causal, 0), xv)  # (b, c, g, Q, r p)
        y = y.transpose(2, 3).reshape(x.shape) * torch.exp((a - m).clamp(-half, half))[..., None]
        if n_wide == 0:
            return y
        w = wide.nonzero(as_tuple=True)  # the wide slices (b, c, g, r) indices, k of them
        yw = _direct(at[w], dtt[w], xt[w], CB[w[:3]], causal)  # (k, Q, p)
        return y.permute(0, 1, 3, 4, 2, 5).index_put(w, yw).permute(0, 1, 4, 2, 3, 5)


def ssd_scan_chunked(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
                     initial_state=None, return_final_state=False, chunk_size=DEFAULT_CHUNK):
    """The scan in chunks of ``chunk_size`` steps, as matrix products (any device; autograd
    differentiates it).  Per chunk: the within-chunk outputs are (C B^T ∘ decay mask) x, the
    chunk's contribution to the state is x^T (decay-to-end ∘ B); a loop over chunks carries
    the state, which reaches each position's output through C and its decay since the chunk
    began.  Memory: O(length x chunk x heads) for the masks, not O(length^2)."""
    b, L, h, p, g, n = check_ssd_args(x, dt, A, B, C, D, z, dt_bias, initial_state)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    cdt = _compute_dtype(x.dtype)
    r, Q = h // g, chunk_size
    nc = -(-L // Q)
    pad = nc * Q - L  # padded steps have dt = 0: no decay, no input, outputs dropped

    def chunks(t, fill_dims):
        t = F.pad(t.to(cdt), (0, 0) * fill_dims + (0, pad)) if pad else t.to(cdt)
        return t.reshape(b, nc, Q, *t.shape[2:])

    dtc = chunks(_time_step(dt, dt_bias, dt_softplus, cdt), 1)  # (b, c, Q, h)
    xc = chunks(x, 2).reshape(b, nc, Q, g, r, p)
    Bc, Cc = chunks(B, 2), chunks(C, 2)  # (b, c, Q, g, n)
    a = torch.cumsum(dtc * A.to(cdt), dim=2).reshape(b, nc, Q, g, r)  # log decay since start
    dtc = dtc.reshape(b, nc, Q, g, r)
    # within chunks: y_i = sum_{j <= i} <C_i, B_j> exp(a_i - a_j) dt_j x_j
    y = _within_chunks(a, dtc, xc, Bc, Cc)
    # each chunk's own contribution to the state at its end
    to_end = torch.exp(a[:, :, -1:] - a) * dtc  # (b, c, Q, g, r)
    states = torch.einsum("bcjgr,bcjgrp,bcjgn->bcgrpn", to_end, xc, Bc)
    # across chunks: the state entering each chunk
    H = (initial_state.to(cdt).reshape(b, g, r, p, n) if initial_state is not None
         else xc.new_zeros(b, g, r, p, n))
    chunk_decay = torch.exp(a[:, :, -1])[..., None, None]  # (b, c, g, r, 1, 1)
    entering = []
    # unbind once: indexing [:, c] in the loop would make backward quadratic in the chunks
    # (each index's gradient is a full-size zero tensor)
    for decay_c, state_c in zip(chunk_decay.unbind(1), states.unbind(1)):
        entering.append(H)
        H = decay_c * H + state_c
    Hin = torch.stack(entering, dim=1)  # (b, c, g, r, p, n)
    y = y + torch.einsum("bcign,bcgrpn->bcigrp", Cc, Hin) * torch.exp(a)[..., None]
    y = y.reshape(b, nc * Q, h, p)[:, :L]
    y = _finish(y, x, D, z, cdt)
    return (y, H.reshape(b, h, p, n)) if return_final_state else y


def ssd_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """One step of the scan, updating ``state`` (batch, heads, head_dim, state) in place.

    x, z: (batch, heads, head_dim); dt: (batch, heads); B, C: (batch, groups, state); the rest
    as :func:`ssd_scan_ref`.  Returns y (batch, heads, head_dim) in x's dtype.  Generation runs
    one of these per layer and token, so it is a handful of tensor operations on the state in
    place, with the groups as a view (no copy of B or C per head)."""
    b, h, p, n = state.shape
    g = B.shape[1]
    cdt = torch.promote_types(_compute_dtype(x.dtype), state.dtype)  # float32 at least
    dtc = _time_step(dt, dt_bias, dt_softplus, cdt).view(b, g, h // g)
    xc = x.to(cdt).view(b, g, h // g, p)
    H = state.view(b, g, h // g, p, n) if state.dtype == cdt else \
        state.to(cdt).view(b, g, h // g, p, n)  # a low-precision state: updated in cdt, stored
    H.mul_(torch.exp(dtc * A.to(cdt).view(g, h // g))[..., None, None])
    H.add_((dtc[..., None] * xc)[..., None] * B.to(cdt).view(b, g, 1, 1, n))
    if state.dtype != cdt:
        state.copy_(H.view(b, h, p, n))
    y = torch.matmul(H, C.to(cdt).view(b, g, 1, n, 1)).view(b, h, p)
    return _finish(y[:, None], x[:, None], D, None if z is None else z[:, None], cdt)[:, 0]


SSD_BACKENDS = ("torch", "reference", "triton")


def resolve_ssd_backend(backend: Optional[str], device: torch.device, dtype: torch.dtype) -> str:
    """The backend ``ssd_scan`` runs: a named one, or it says why it cannot run (an error);
    None picks triton for CUDA tensors when it can run there, else torch, warning once per
    reason when a CUDA call falls back (float64 goes to torch silently: it is the exact
    path).  The Mamba-1 dispatcher's rules (``dispatch.resolve_backend``), without its
    environment variable, whose names (cpu) are the selective scan's."""
    from .dispatch import _warn_once, backend_unavailable_reason

    if backend is not None:
        if backend not in SSD_BACKENDS:
            raise ValueError(f"ssd_scan backend must be one of {SSD_BACKENDS}, got {backend!r}")
        reason = backend_unavailable_reason(backend, device, dtype)
        if reason is not None:
            raise RuntimeError(f"ssd_scan backend {backend!r} cannot run: {reason}")
        return backend
    if device.type == "cuda" and dtype != torch.float64:
        reason = backend_unavailable_reason("triton", device, dtype)
        if reason is None:
            return "triton"
        _warn_once(f"ssd-triton:{reason}", f"ssd_scan falls back to the torch backend: {reason}")
    return "torch"


def ssd_scan(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
             initial_state=None, return_final_state=False, chunk_size=DEFAULT_CHUNK,
             backend: Optional[str] = None):
    """The Mamba-2 scan (shapes: the module docstring).  ``backend``: "torch" (the chunked
    matmul form, on any device), "reference" (the loop over time) or "triton" (the chunked
    form in Triton kernels, :mod:`seqmamba_kernels.triton_ssd`: CUDA tensors, or CPU tensors
    under ``TRITON_INTERPRET=1``; float32/bf16/fp16); None: triton on CUDA when it can run
    there, else torch."""
    name = resolve_ssd_backend(backend, x.device, x.dtype)
    if name == "reference":
        return ssd_scan_ref(x, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state,
                            return_final_state)
    if name == "torch":
        return ssd_scan_chunked(x, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state,
                                return_final_state, chunk_size)
    check_ssd_args(x, dt, A, B, C, D, z, dt_bias, initial_state)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    from .triton_ssd import ssd_scan_triton

    y, H = ssd_scan_triton(x, dt, A, B, C, D, z, dt_bias, dt_softplus, initial_state, chunk_size)
    return (y, H) if return_final_state else y
