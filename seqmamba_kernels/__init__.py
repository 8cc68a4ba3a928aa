"""seqmamba's selective-scan engine: the Mamba (S6) scan and the Mamba-2 (SSD) scan, their
one-step updates and their references.

Public API::

    from seqmamba_kernels import selective_scan, selective_scan_ref, selective_state_update, \
        selective_state_update_ref, causal_conv1d, causal_conv1d_ref, ssd_scan, ssd_scan_ref, \
        ssd_state_update

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
from .ssd import SSD_BACKENDS, ssd_scan, ssd_scan_ref, ssd_state_update

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
    "SSD_BACKENDS",
    "ssd_scan",
    "ssd_scan_ref",
    "ssd_state_update",
]
