"""Backend choice and the public entry points ``selective_scan`` / ``selective_state_update``.

Backends:
  ``"reference"``  loop over time (:mod:`seqmamba_kernels.reference`), any dtype, autograd.
  ``"torch"``      chunked PyTorch ops with a hand-written backward (:mod:`seqmamba_kernels.torch_scan`):
                   the portable path, on any device and dtype.
  ``"cpu"``        the fused, compiled CPU kernel (:mod:`seqmamba_kernels.cpu_scan`), built with the
                   machine's C compiler on first use; float32 arithmetic (bf16/fp16 accepted).
  ``"triton"``     fused Triton kernels (:mod:`seqmamba_kernels.triton_scan`) on CUDA tensors, or on CPU
                   tensors when ``TRITON_INTERPRET=1`` was set before triton was imported.

Order of precedence: an explicit ``backend=`` argument, then the environment variable
``SEQMAMBA_SCAN_BACKEND``, then the automatic choice: triton on CUDA, cpu on CPU tensors,
torch for float64 (the exact path) and elsewhere.  A backend asked for by name that cannot
run is an error that says why; the automatic choice falls back to ``torch`` with a warning,
once per reason (a machine without a C compiler, say).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from typing import Optional

import torch

from ._checks import check_scan_args, check_state_update_args
from .reference import selective_scan_ref, state_update_math
from .torch_scan import selective_scan_torch, state_update_torch

BACKENDS = ("reference", "torch", "cpu", "triton")
ENV_VAR = "SEQMAMBA_SCAN_BACKEND"
_warned: set = set()


def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def triton_interpreted() -> bool:
    """True when Triton kernels run in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def backend_unavailable_reason(name: str, device: torch.device, dtype: torch.dtype) -> Optional[str]:
    """Why ``name`` cannot run on ``device`` with ``dtype``, or None if it can."""
    if name in ("reference", "torch"):
        return None
    if name == "cpu":
        return _cpu_unavailable_reason(device, dtype)
    if name != "triton":
        raise ValueError(f"unknown scan backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if not _triton_installed():
        return "the triton package is not installed (pip install triton)"
    if dtype == torch.float64:
        return ("the triton kernels accumulate in float32 and do not take float64 inputs; "
                "use backend='reference' or 'torch' for float64")
    if device.type == "cuda":
        return None
    if triton_interpreted():
        return None
    return (f"triton kernels need CUDA tensors, got tensors on {device}; set TRITON_INTERPRET=1 "
            "before importing triton to run them (slowly) on the CPU, or use backend='torch'")


def _cpu_unavailable_reason(device: torch.device, dtype: torch.dtype) -> Optional[str]:
    if device.type != "cpu":
        return f"the fused CPU kernel runs on CPU tensors, got tensors on {device}"
    if dtype == torch.float64:
        return ("the fused CPU kernel computes in float32 and does not take float64 inputs; "
                "use backend='torch' or 'reference' for float64")
    from .cpu_scan import cpu_kernel_unavailable_reason

    return cpu_kernel_unavailable_reason()


def available_backends(device: Optional[torch.device] = None,
                       dtype: torch.dtype = torch.float32) -> dict:
    """Map each backend name to None (usable) or the reason it is not, for ``device``."""
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return {name: backend_unavailable_reason(name, torch.device(device), dtype) for name in BACKENDS}


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def resolve_backend(backend: Optional[str], device: torch.device, dtype: torch.dtype) -> str:
    """Return the backend that will run: explicit name > $SEQMAMBA_SCAN_BACKEND > automatic."""
    source = "backend argument"
    if backend is None and os.environ.get(ENV_VAR):
        backend, source = os.environ[ENV_VAR].strip().lower(), f"${ENV_VAR}"
    if backend is not None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown scan backend {backend!r} (from {source}); "
                             f"choose one of {', '.join(BACKENDS)}")
        reason = backend_unavailable_reason(backend, device, dtype)
        if reason is not None:
            raise RuntimeError(f"scan backend {backend!r} (from {source}) cannot run: {reason}")
        return backend
    if device.type == "cuda":
        reason = backend_unavailable_reason("triton", device, dtype)
        if reason is None:
            return "triton"
        _warn_once(f"triton:{reason}", f"selective scan falls back to the torch backend: {reason}")
    elif device.type == "cpu" and dtype != torch.float64:  # float64 belongs to torch
        reason = backend_unavailable_reason("cpu", device, dtype)
        if reason is None:
            return "cpu"
        _warn_once(f"cpu:{reason}", f"selective scan falls back to the torch backend: {reason}")
    return "torch"


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   initial_state=None, return_last_state=False, backend=None):
    """The selective scan of Mamba (S6), on the backend best suited to the inputs.

    u, delta, z: (batch, dim, length); A: (dim, state), real;
    B: (batch, state, length), (batch, groups, state, length) or (dim, state);
    C: (batch, state, length) or (batch, groups, state, length);
    D, delta_bias: (dim,); initial_state: (batch, dim, state), the state before step 0.

    Semantics (per channel d, state n), as mamba-ssm's ``selective_scan_ref``::

        dt_t = softplus(delta_t + delta_bias) if delta_softplus else delta_t + delta_bias
        h_t  = exp(dt_t A) h_{t-1} + dt_t B_t u_t        (h_{-1} = initial_state or 0)
        y_t  = <h_t, C_t> + D u_t;  out_t = y_t * silu(z_t)

    Returns out (batch, dim, length) in u's dtype, or ``(out, last_state)`` with
    ``return_last_state``; last_state (batch, dim, state) is float32 (float64 for float64
    inputs).  Gradients flow to every tensor input, ``initial_state`` included, so a long
    sequence can be processed in chunks that carry the state.
    """
    shapes = check_scan_args(u, delta, A, B, C, D, z, delta_bias, initial_state)
    name = resolve_backend(backend, u.device, u.dtype)
    if name == "reference":
        out, last = selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                       initial_state, return_last_state=True)
    elif name == "torch":
        out, last = selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                         initial_state, shapes)
    elif name == "cpu":
        from .cpu_scan import selective_scan_cpu

        out, last = selective_scan_cpu(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                       initial_state, shapes)
    else:
        from .triton_scan import selective_scan_triton

        out, last = selective_scan_triton(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                          initial_state, shapes)
    return (out, last) if return_last_state else out


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None,
                           dt_softplus=False, backend=None):
    """One recurrent step of the selective scan (for generation), updating ``state`` in place.

    state: (batch, dim, state); x, dt, z: (batch, dim); A: (dim, state);
    B, C: (batch, state) or (batch, groups, state); D, dt_bias: (dim,).
    Same semantics as one step of :func:`selective_scan`.  Returns out (batch, dim) in x's dtype.
    """
    check_state_update_args(state, x, dt, A, B, C, D, z, dt_bias)
    return state_update_unchecked(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus, backend)


def state_update_fn(backend, device: torch.device, dtype: torch.dtype, traceable: bool = False):
    """The unchecked one-step function the backend resolves to, for a caller that runs many
    steps (generation) and resolves once: f(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus).
    ``traceable=True`` asks for a form ``torch.compile`` fuses into its graph: on the CPU that
    is the torch backend's update, which inductor compiles to one loop (measured 2x the steps/s
    of the fused kernel called as an opaque operator from a compiled step, whose graph it splits)."""
    name = resolve_backend(backend, device, dtype)
    if name == "triton":
        from .triton_scan import selective_state_update_triton

        return selective_state_update_triton
    if name == "cpu":
        if traceable:
            return state_update_torch
        from .cpu_scan import state_update_cpu

        return state_update_cpu
    return state_update_math if name == "reference" else state_update_torch


def state_update_unchecked(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
                           backend=None):
    """:func:`selective_state_update` without argument validation, for callers that build the
    arguments themselves (a model's generation loop, where the checks cost as much as the step).
    """
    fn = state_update_fn(backend, x.device, x.dtype)
    return fn(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)
