"""seqmamba's selective-scan engine: the Mamba (S6) scan, its one-step update and their references.

Public API::

    from seqmamba_kernels import selective_scan, selective_scan_ref, selective_state_update, \
        selective_state_update_ref, causal_conv1d, causal_conv1d_ref

This package depends on torch (and optionally triton) only; it never imports ``seqmamba`` or
``pipelines``.
"""

from .dispatch import (
    BACKENDS,
    available_backends,
    resolve_backend,
    selective_scan,
    selective_state_update,
)
from .conv import causal_conv1d, causal_conv1d_ref
from .reference import selective_scan_ref, selective_state_update_ref

__all__ = [
    "BACKENDS",
    "available_backends",
    "causal_conv1d",
    "causal_conv1d_ref",
    "resolve_backend",
    "selective_scan",
    "selective_scan_ref",
    "selective_state_update",
    "selective_state_update_ref",
]
