"""The Mamba-2 mixer (Dao & Gu 2024), with the parameter names of mamba-ssm's ``Mamba2`` and
transformers' ``Mamba2Mixer``.

    x: (batch, length, d_model)
    in_proj(x) -> [z: d_inner | xBC: d_inner + 2 groups state | dt: heads]
    xBC -> causal depthwise conv1d (width d_conv) -> SiLU -> [x | B | C]
    y = ssd_scan(x as (heads, head_dim), dt, A = -exp(A_log), B, C (groups, state), D,
                 dt_bias, softplus)                      (dt clamped to dt_limit if set)
    y = RMSNorm(y * silu(z)) per group of d_inner / groups channels, times its weight
    out_proj(y) -> (batch, length, d_model)

The decay A is one scalar per head (not per channel and state, as Mamba-1's), which is what
lets the scan run as matrix products (``seqmamba_kernels.ssd``) and carry far larger states.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from seqmamba_kernels import causal_conv1d, ssd_scan

from .cache import LayerCache
from .config import MambaConfig
from .mixer import KeepsFP32Params, MambaMixer, _dt_bias_init

CHUNK = 64  # steps per chunk of the matmul form: a machine choice, not saved with the model


class GatedRMSNorm(nn.Module):
    """y (..., width), z (..., width) -> RMSNorm(y * silu(z)) over groups of ``width / groups``
    channels, times a learned weight (mamba-ssm's RMSNormGated, norm after the gate)."""

    def __init__(self, width: int, groups: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.groups, self.eps = groups, eps

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = y.float() * F.silu(z.float())
        g = h.view(*h.shape[:-1], self.groups, -1)
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight.float() * g.view_as(h)).to(y.dtype)


class Mamba2Mixer(KeepsFP32Params):
    def __init__(self, cfg: MambaConfig, layer_idx: int = 0):
        super().__init__()
        self.cfg, self.layer_idx = cfg, layer_idx
        d, di, n, g = cfg.mixer_width, cfg.d_inner, cfg.d_state, cfg.n_groups
        self.d_inner, self.d_state, self.n_groups = di, n, g
        self.head_dim, self.n_heads = cfg.head_dim, di // cfg.head_dim
        self.conv_dim = di + 2 * g * n
        self.in_proj = nn.Linear(d, di + self.conv_dim + self.n_heads, bias=cfg.bias)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, cfg.d_conv, groups=self.conv_dim,
                                bias=cfg.conv_bias, padding=cfg.d_conv - 1)
        self.dt_bias = nn.Parameter(_dt_bias_init(self.n_heads, cfg))
        self.dt_bias._no_reinit = self.dt_bias._no_weight_decay = True
        # A per head, uniform in [1, 16] as mamba-ssm's A_init_range
        self.A_log = nn.Parameter(torch.log(torch.empty(self.n_heads).uniform_(1, 16)))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.n_heads))
        self.D._no_weight_decay = True
        self.norm = GatedRMSNorm(di, g, cfg.norm_epsilon)
        self.out_proj = nn.Linear(di, d, bias=cfg.bias)

    def forward(self, hidden: torch.Tensor, cache: Optional[LayerCache] = None,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """hidden: (batch, length, mixer_width) -> same shape; with ``cache`` (conv window and
        state (batch, heads, head_dim, d_state)) the call continues from it and updates it.
        ``lengths`` is unused: a causal scan never lets right pads reach a real position."""
        b, L, _ = hidden.shape
        z, xbc, dt = torch.split(self.in_proj(hidden), [self.d_inner, self.conv_dim,
                                                        self.n_heads], dim=-1)
        xbc, conv_state = causal_conv1d(xbc.transpose(1, 2), self.conv1d.weight[:, 0],
                                        self.conv1d.bias, activation="silu",
                                        initial_state=None if cache is None else cache.conv)
        if cache is not None:
            cache.conv = conv_state
        x, B, C = torch.split(xbc.transpose(1, 2), [self.d_inner, self.d_state * self.n_groups,
                                                   self.d_state * self.n_groups], dim=-1)
        dt, dt_bias, softplus = dt, self.dt_bias.float(), True
        if self.cfg.dt_limit is not None:  # clamp the time step after the softplus
            dt = F.softplus(dt.float() + dt_bias).clamp(*self.cfg.dt_limit)
            dt_bias, softplus = None, False
        out = ssd_scan(x.reshape(b, L, self.n_heads, self.head_dim), dt,
                       -torch.exp(self.A_log.float()), B.reshape(b, L, self.n_groups, -1),
                       C.reshape(b, L, self.n_groups, -1), self.D.float(), dt_bias=dt_bias,
                       dt_softplus=softplus,
                       initial_state=None if cache is None else cache.ssm,
                       return_final_state=cache is not None, chunk_size=CHUNK)
        if cache is not None:
            out, cache.ssm = out
        y = self.norm(out.reshape(b, L, self.d_inner), z)
        return self.out_proj(y)


def mixer_class(cfg: MambaConfig):
    """The mixer of a Mamba block: Mamba2Mixer for ``arch == "mamba2"``, else MambaMixer."""
    return Mamba2Mixer if cfg.arch == "mamba2" else MambaMixer
