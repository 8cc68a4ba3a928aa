"""Loop-over-time reference implementations (the oracle every fast path is tested against).

They follow the semantics of mamba-ssm's ``selective_scan_ref`` /
``selective_state_update_ref``, plus an ``initial_state`` (h_{-1}).  Any floating
dtype is accepted; the state is carried in float64 for float64 inputs and in
float32 otherwise, so running them on ``.double()`` inputs gives float64-exact
answers.  Autograd differentiates them directly.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ._checks import check_scan_args, check_state_update_args, expand_groups, optional, state_dtype


def _per_step(t: torch.Tensor, dim: int, time_invariant: bool, length: int):
    """Split B or C into ``length`` per-step (batch, dim, state) views, or repeat a constant one.

    ``unbind`` is used rather than indexing ``t[..., i]`` inside the loop: autograd turns each
    index into a full-size zero gradient, which makes backward quadratic in the length, while
    one ``unbind`` is undone by a single ``stack``.
    """
    if time_invariant:  # (dim, state): the same matrix at every step
        return [t[None]] * length
    if t.dim() == 3:  # (batch, state, length) -> one group
        t = t[:, None]
    return [expand_groups(s, dim) for s in t.unbind(-1)]


def selective_scan_ref(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                       C: torch.Tensor, D: Optional[torch.Tensor] = None,
                       z: Optional[torch.Tensor] = None, delta_bias: Optional[torch.Tensor] = None,
                       delta_softplus: bool = False, initial_state: Optional[torch.Tensor] = None,
                       return_last_state: bool = False):
    """Selective scan, one time step at a time.

    u, delta, z: (batch, dim, length); A: (dim, state); B: (batch, state, length),
    (batch, groups, state, length) or (dim, state); C: (batch, state, length) or
    (batch, groups, state, length); D, delta_bias: (dim,); initial_state: (batch, dim, state).

    Per channel d and state n::

        dt_t = softplus(delta_t + delta_bias)        (or delta_t + delta_bias)
        h_t  = exp(dt_t A) h_{t-1} + dt_t B_t u_t,   h_{-1} = initial_state or 0
        y_t  = <h_t, C_t> + D u_t,   then y_t * silu(z_t)

    Returns out (batch, dim, length) in u's dtype, and with ``return_last_state`` also
    h_{length-1} (batch, dim, state) in float32 (float64 for float64 inputs).
    """
    s = check_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state)
    cdt = state_dtype(u.dtype)
    dt = delta.to(cdt)
    if delta_bias is not None:
        dt = dt + delta_bias.to(cdt)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    u_c = u.to(cdt)
    A_c = A.to(cdt)
    Bs = _per_step(B.to(cdt), s.dim, s.b_time_invariant, s.length)
    Cs = _per_step(C.to(cdt), s.dim, False, s.length)
    h = (initial_state.to(cdt) if initial_state is not None
         else u_c.new_zeros(s.batch, s.dim, s.state))
    ys = []
    for dt_t, u_t, B_t, C_t in zip(dt.unbind(-1), u_c.unbind(-1), Bs, Cs):
        # Each step's (batch, dim, state) terms are formed here, inside the loop.
        h = torch.exp(dt_t[..., None] * A_c) * h + (dt_t * u_t)[..., None] * B_t
        ys.append((h * C_t).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u_c * D.to(cdt)[:, None]
    if z is not None:
        y = y * F.silu(z.to(cdt))
    out = y.to(u.dtype)
    return (out, h) if return_last_state else out


def selective_state_update_ref(state: torch.Tensor, x: torch.Tensor, dt: torch.Tensor,
                               A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                               D: Optional[torch.Tensor] = None, z: Optional[torch.Tensor] = None,
                               dt_bias: Optional[torch.Tensor] = None,
                               dt_softplus: bool = False) -> torch.Tensor:
    """One recurrent step of the selective scan, updating ``state`` in place.

    state: (batch, dim, state); x, dt, z: (batch, dim); A: (dim, state);
    B, C: (batch, state) or (batch, groups, state); D, dt_bias: (dim,).
    Returns out (batch, dim) in x's dtype.
    """
    check_state_update_args(state, x, dt, A, B, C, D, z, dt_bias)
    return state_update_math(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)


def state_update_math(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """The arithmetic of :func:`selective_state_update_ref`, for arguments already checked."""
    dim = x.shape[1]
    cdt = state_dtype(x.dtype)
    dt_c = dt.to(cdt)
    if dt_bias is not None:
        dt_c = dt_c + dt_bias.to(cdt)
    if dt_softplus:
        dt_c = F.softplus(dt_c)
    x_c = x.to(cdt)
    B_c = expand_groups(B.to(cdt) if B.dim() == 3 else B.to(cdt)[:, None], dim)
    C_c = expand_groups(C.to(cdt) if C.dim() == 3 else C.to(cdt)[:, None], dim)
    h = torch.exp(dt_c[..., None] * A.to(cdt)) * state.to(cdt) + (dt_c * x_c)[..., None] * B_c
    state.copy_(h)
    y = (h * C_c).sum(-1)
    if D is not None:
        y = y + x_c * D.to(cdt)
    z_c = optional(z, cdt)
    if z_c is not None:
        y = y * F.silu(z_c)
    return y.to(x.dtype)
