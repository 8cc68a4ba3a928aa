"""Argument checks shared by every selective-scan backend.

The public functions validate once, at the door, and hand the kernels a small
description of the call (:class:`ScanShapes`); kernels then trust their inputs.
Every error is a ``ValueError`` that names the argument and the shape expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class ScanShapes:
    """Sizes of one selective-scan call.

    ``b_groups`` / ``c_groups`` are the number of groups of B / C (1 for the
    ungrouped ``(batch, state, length)`` form); ``b_time_invariant`` is True when
    B is ``(dim, state)``.
    """

    batch: int
    dim: int
    length: int
    state: int
    b_groups: int
    c_groups: int
    b_time_invariant: bool


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def check_float(name: str, t: torch.Tensor) -> None:
    """Reject non-tensors, complex and integer tensors with a message naming ``name``."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in _FLOAT_DTYPES:
        raise ValueError(
            f"{name} must be a real floating-point tensor (float16, bfloat16, float32 or "
            f"float64), got {t.dtype}; convert it with .float()"
        )


def _check_rank_shape(name: str, t: torch.Tensor, expected: tuple, names: str) -> None:
    if tuple(t.shape) != tuple(expected):
        want = "(" + ", ".join(f"{n}={s}" for n, s in zip(names.split(","), expected)) + ")"
        raise ValueError(f"{name} must have shape {want}, got {_shape(t)}")


def _check_device(name: str, t: torch.Tensor, device: torch.device) -> None:
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but u is on {device}; put all inputs on one device")


def _check_per_channel(dim: int, device: torch.device, **vectors) -> None:
    """Optional (dim,) vectors such as D and the delta bias."""
    for name, t in vectors.items():
        if t is not None:
            check_float(name, t)
            _check_rank_shape(name, t, (dim,), "dim")
            _check_device(name, t, device)


def _check_bc(name: str, t: torch.Tensor, batch: int, dim: int, state: int, length: int,
              allow_time_invariant: bool) -> tuple[int, bool]:
    """Return (groups, time_invariant) for B or C, or raise naming the forms accepted."""
    forms = "(batch, state, length), (batch, groups, state, length)"
    if allow_time_invariant:
        forms += " or (dim, state)"
    if t.dim() == 2 and allow_time_invariant:
        _check_rank_shape(name, t, (dim, state), "dim,state")
        return 1, True
    if t.dim() == 3:
        _check_rank_shape(name, t, (batch, state, length), "batch,state,length")
        return 1, False
    if t.dim() == 4:
        groups = t.shape[1]
        if groups < 1 or dim % groups != 0:
            raise ValueError(
                f"{name} has {groups} groups, which must divide dim={dim} "
                f"(channel d uses group d // (dim / groups))"
            )
        _check_rank_shape(name, t, (batch, groups, state, length), "batch,groups,state,length")
        return groups, False
    raise ValueError(f"{name} must have one of the shapes {forms}, got {_shape(t)}")


def check_scan_args(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                    initial_state=None) -> ScanShapes:
    """Validate the arguments of :func:`seqmamba_kernels.selective_scan`; return the sizes.

    u, delta, z: (batch, dim, length); A: (dim, state); B: (batch, state, length),
    (batch, groups, state, length) or (dim, state); C: (batch, state, length) or
    (batch, groups, state, length); D, delta_bias: (dim,);
    initial_state: (batch, dim, state).
    """
    check_float("u", u)
    if u.dim() != 3:
        raise ValueError(f"u must have shape (batch, dim, length), got {_shape(u)}")
    batch, dim, length = u.shape
    if length < 1:
        raise ValueError("u has length 0; the scan needs at least one time step")
    device = u.device
    check_float("delta", delta)
    _check_rank_shape("delta", delta, (batch, dim, length), "batch,dim,length")
    _check_device("delta", delta, device)
    check_float("A", A)
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"A must have shape (dim={dim}, state), got {_shape(A)}")
    state = A.shape[1]
    if state < 1:
        raise ValueError("A has state size 0; it must be (dim, state) with state >= 1")
    _check_device("A", A, device)
    if not bool(torch.isfinite(A).all()):
        raise ValueError("A contains NaN or infinite values; A = -exp(A_log) must be finite")
    check_float("B", B)
    _check_device("B", B, device)
    b_groups, b_ti = _check_bc("B", B, batch, dim, state, length, allow_time_invariant=True)
    check_float("C", C)
    _check_device("C", C, device)
    c_groups, _ = _check_bc("C", C, batch, dim, state, length, allow_time_invariant=False)
    _check_per_channel(dim, device, D=D, delta_bias=delta_bias)
    if z is not None:
        check_float("z", z)
        _check_rank_shape("z", z, (batch, dim, length), "batch,dim,length")
        _check_device("z", z, device)
    if initial_state is not None:
        check_float("initial_state", initial_state)
        _check_rank_shape("initial_state", initial_state, (batch, dim, state), "batch,dim,state")
        _check_device("initial_state", initial_state, device)
    return ScanShapes(batch, dim, length, state, b_groups, c_groups, b_ti)


def check_state_update_args(state, x, dt, A, B, C, D=None, z=None, dt_bias=None) -> int:
    """Validate the arguments of :func:`seqmamba_kernels.selective_state_update`; return groups of B/C.

    state: (batch, dim, state); x, dt, z: (batch, dim); A: (dim, state);
    B, C: (batch, state) or (batch, groups, state); D, dt_bias: (dim,).
    """
    check_float("state", state)
    if state.dim() != 3:
        raise ValueError(f"state must have shape (batch, dim, state), got {_shape(state)}")
    batch, dim, nstate = state.shape
    device = state.device
    for name, t in (("x", x), ("dt", dt)):
        check_float(name, t)
        _check_rank_shape(name, t, (batch, dim), "batch,dim")
        _check_device(name, t, device)
    check_float("A", A)
    _check_rank_shape("A", A, (dim, nstate), "dim,state")
    _check_device("A", A, device)
    if not bool(torch.isfinite(A).all()):
        raise ValueError("A contains NaN or infinite values; A = -exp(A_log) must be finite")
    groups = []
    for name, t in (("B", B), ("C", C)):
        check_float(name, t)
        _check_device(name, t, device)
        if t.dim() == 2:
            _check_rank_shape(name, t, (batch, nstate), "batch,state")
            groups.append(1)
        elif t.dim() == 3:
            g = t.shape[1]
            if g < 1 or dim % g != 0:
                raise ValueError(f"{name} has {g} groups, which must divide dim={dim}")
            _check_rank_shape(name, t, (batch, g, nstate), "batch,groups,state")
            groups.append(g)
        else:
            raise ValueError(
                f"{name} must have shape (batch, state) or (batch, groups, state), got {_shape(t)}"
            )
    _check_per_channel(dim, device, D=D, dt_bias=dt_bias)
    if z is not None:
        check_float("z", z)
        _check_rank_shape("z", z, (batch, dim), "batch,dim")
        _check_device("z", z, device)
    return groups[0], groups[1]


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the recurrent state is kept in: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def expand_groups(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Repeat grouped per-channel values to every channel.

    t: (batch, groups, state) -> (batch, dim, state); channel d takes group d // (dim / groups).
    """
    batch, groups, nstate = t.shape
    return t[:, :, None, :].expand(batch, groups, dim // groups, nstate).reshape(batch, dim, nstate)


def optional(t: Optional[torch.Tensor], dtype: torch.dtype) -> Optional[torch.Tensor]:
    return None if t is None else t.to(dtype)
