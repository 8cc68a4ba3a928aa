"""Mamba's causal depthwise convolution (the short convolution before the scan), with state.

    out, final_state = causal_conv1d(x, weight, bias, initial_state, activation="silu")

x: (batch, dim, length); weight: (dim, width); bias: (dim,); initial_state and final_state:
(batch, dim, width - 1), the inputs just before the first step and after the last, so that a
long sequence can run in chunks (or one token at a time) and give the one-shot answer.

Backends as for the scan: the fused CPU kernel runs it when nothing asks for gradients (batch
prediction, evaluation); otherwise, and off the CPU, it is PyTorch's conv1d, which autograd
differentiates.  ``causal_conv1d_ref`` is the same arithmetic in the inputs' dtype (float64
for an exact answer).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ._checks import check_float
from .dispatch import resolve_backend

ACTIVATIONS = (None, "silu")


def _check(x, weight, bias, initial_state, activation) -> int:
    """Validate; return the width."""
    check_float("x", x)
    if x.dim() != 3:
        raise ValueError(f"x must have shape (batch, dim, length), got {tuple(x.shape)}")
    batch, dim, _ = x.shape
    check_float("weight", weight)
    if weight.dim() != 2 or weight.shape[0] != dim or weight.shape[1] < 1:
        raise ValueError(f"weight must have shape (dim={dim}, width), got {tuple(weight.shape)}")
    width = weight.shape[1]
    if bias is not None:
        check_float("bias", bias)
        if tuple(bias.shape) != (dim,):
            raise ValueError(f"bias must have shape (dim={dim},), got {tuple(bias.shape)}")
    if initial_state is not None:
        check_float("initial_state", initial_state)
        if tuple(initial_state.shape) != (batch, dim, width - 1):
            raise ValueError(f"initial_state must have shape (batch={batch}, dim={dim}, "
                             f"width-1={width - 1}), got {tuple(initial_state.shape)}")
    for name, t in (("weight", weight), ("bias", bias), ("initial_state", initial_state)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be None or 'silu', got {activation!r}")
    return width


def _with_prefix(x: torch.Tensor, initial_state: Optional[torch.Tensor], k: int) -> torch.Tensor:
    """[initial_state (zeros when None), x] along time: (batch, dim, k + length)."""
    prefix = (initial_state.to(x.dtype) if initial_state is not None
              else x.new_zeros(x.shape[0], x.shape[1], k))
    return torch.cat([prefix, x], dim=-1)


def _final_state(x: torch.Tensor, initial_state: Optional[torch.Tensor], width: int):
    """The last width-1 inputs, (batch, dim, width-1), as a tensor of its own (not a view that
    would keep all of x alive)."""
    k = width - 1
    if x.shape[-1] >= k:
        return x[..., x.shape[-1] - k:].clone()
    return _with_prefix(x, initial_state, k)[..., -k:].clone()


def _conv_torch(x, weight, bias, initial_state, activation):
    out = F.conv1d(_with_prefix(x, initial_state, weight.shape[1] - 1), weight.to(x.dtype)[:, None],
                   None if bias is None else bias.to(x.dtype), groups=x.shape[1])
    return F.silu(out) if activation == "silu" else out


def causal_conv1d_ref(x, weight, bias=None, initial_state=None, activation=None):
    """The reference: PyTorch's conv1d on [initial_state, x] in x's dtype.  Returns
    (out (batch, dim, length), final_state (batch, dim, width - 1))."""
    width = _check(x, weight, bias, initial_state, activation)
    return (_conv_torch(x, weight, bias, initial_state, activation),
            _final_state(x, initial_state, width))


def causal_conv1d(x, weight, bias=None, initial_state=None, activation=None, backend=None):
    """Causal depthwise convolution on the backend the scan would use (see the module doc).

    Returns (out (batch, dim, length) in x's dtype, final_state (batch, dim, width - 1)).
    """
    width = _check(x, weight, bias, initial_state, activation)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, weight, bias, initial_state))
    if not needs_grad and resolve_backend(backend, x.device, x.dtype) == "cpu":
        from .cpu_scan import causal_conv1d_cpu

        out = causal_conv1d_cpu(x, weight, bias, initial_state, activation == "silu")
    else:
        out = _conv_torch(x, weight, bias, initial_state, activation)
    return out, _final_state(x, initial_state, width)
