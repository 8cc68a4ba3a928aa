"""The Mamba mixer (the S6 block of the Mamba paper), with mamba-ssm's parameter names.

    x: (batch, length, d_model)
    in_proj -> (x, z), each (batch, d_inner, length)
    x -> causal depthwise conv1d (width d_conv) -> SiLU
    x_proj(x) -> (dt_low: dt_rank, B: d_state, C: d_state) per position; dt = dt_proj(dt_low)
    y = selective_scan(x, dt, A=-exp(A_log), B, C, D, z, delta_bias=dt_proj.bias, softplus)
    out_proj(y) -> (batch, length, d_model)

With ``selective=False`` dt, B and C do not depend on the input (an S4-like time-invariant
system: dt = softplus(dt_bias), B: (d_inner, d_state), C: (d_state,)), the ablation of the
Mamba paper's selective-copying experiment.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from seqmamba_kernels import causal_conv1d, selective_scan

from .cache import LayerCache
from .config import MambaConfig

# Parameters kept in float32 when the rest of the model is cast to bf16/fp16: exp(dt A) and
# the skip D are precision-critical, and mamba-ssm keeps them in float32 too.
FP32_PARAMS = ("A_log", "D")


def _dt_bias_init(d_inner: int, cfg: MambaConfig) -> torch.Tensor:
    """softplus^-1 of time steps drawn log-uniformly from [dt_min, dt_max] (floored)."""
    dt = torch.exp(torch.rand(d_inner) * (math.log(cfg.dt_max) - math.log(cfg.dt_min))
                   + math.log(cfg.dt_min)).clamp(min=cfg.dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))  # inverse of softplus


class KeepsFP32Params(nn.Module):
    """A mixer whose FP32_PARAMS stay float32 whatever the module is cast to."""

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        for name in FP32_PARAMS:
            p = getattr(self, name)
            if p.is_floating_point() and p.dtype != torch.float32:
                p.data = p.data.float()
        return self


class MambaMixer(KeepsFP32Params):
    # the scan backend this mixer calls (None: the dispatcher's choice); set at run time by
    # MambaPreTrainedModel.set_scan_backend, never saved with the model
    scan_backend: Optional[str] = None

    def __init__(self, cfg: MambaConfig, layer_idx: int = 0):
        super().__init__()
        self.cfg = cfg
        self.layer_idx = layer_idx
        d, di, n, r = cfg.mixer_width, cfg.d_inner, cfg.d_state, cfg.dt_rank_value
        self.d_inner, self.d_state, self.dt_rank, self.d_conv = di, n, r, cfg.d_conv
        self.in_proj = nn.Linear(d, 2 * di, bias=cfg.bias)
        self.conv1d = nn.Conv1d(di, di, cfg.d_conv, groups=di, bias=cfg.conv_bias,
                                padding=cfg.d_conv - 1)
        if cfg.selective:
            self.x_proj = nn.Linear(di, r + 2 * n, bias=False)
            self.dt_proj = nn.Linear(r, di, bias=True)
            std = r ** -0.5 * cfg.dt_scale
            with torch.no_grad():
                if cfg.dt_init == "constant":
                    self.dt_proj.weight.fill_(std)
                else:
                    self.dt_proj.weight.uniform_(-std, std)
                self.dt_proj.bias.copy_(_dt_bias_init(di, cfg))
            self.dt_proj.bias._no_reinit = True
        else:
            self.dt_bias = nn.Parameter(_dt_bias_init(di, cfg))
            self.B_lti = nn.Parameter(torch.randn(di, n) * n ** -0.5)
            self.C_lti = nn.Parameter(torch.randn(n) * n ** -0.5)
        A = torch.arange(1, n + 1, dtype=torch.float32).repeat(di, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(di))
        self.D._no_weight_decay = True
        self.out_proj = nn.Linear(di, d, bias=cfg.bias)

    def _conv(self, x: torch.Tensor, cache: Optional[LayerCache]) -> torch.Tensor:
        """SiLU of the causal depthwise conv of x: (batch, d_inner, length), continuing from
        the cache (and updating it)."""
        out, state = causal_conv1d(x, self.conv1d.weight[:, 0], self.conv1d.bias,
                                   initial_state=None if cache is None else cache.conv,
                                   activation="silu", backend=self.scan_backend)
        if cache is not None:
            cache.conv = state
        return out

    def _ssm_inputs(self, x: torch.Tensor):
        """dt: (batch, d_inner, length), B and C: (batch, d_state, length) or time-invariant."""
        if not self.cfg.selective:
            bsz, _, L = x.shape
            dt = x.new_zeros(bsz, self.d_inner, L)
            C = self.C_lti.to(x.dtype)[None, :, None].expand(bsz, self.d_state, L)
            return dt, self.B_lti.to(x.dtype), C, self.dt_bias
        x_dbl = self.x_proj(x.transpose(1, 2))  # (batch, length, r + 2n)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (dt @ self.dt_proj.weight.t()).transpose(1, 2)  # (batch, d_inner, length)
        return dt, B.transpose(1, 2), C.transpose(1, 2), self.dt_proj.bias

    def forward(self, hidden: torch.Tensor, cache: Optional[LayerCache] = None,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """hidden: (batch, length, mixer_width) -> (batch, length, mixer_width).

        ``lengths`` is accepted for a uniform interface and unused: a causal scan over a
        right-padded row never lets the pads reach a real position.  With ``cache`` the call
        continues from its state and updates it (any length, one token included; generation's
        fast per-token path is :class:`seqmamba.stepper.RecurrentStepper`).
        """
        xz = self.in_proj(hidden).transpose(1, 2)  # (batch, 2 d_inner, length)
        x, z = xz.chunk(2, dim=1)
        x = self._conv(x, cache)
        dt, B, C, dt_bias = self._ssm_inputs(x)
        A = -torch.exp(self.A_log.float())
        D = self.D.float()
        backend = self.scan_backend
        if cache is not None:
            y, cache.ssm = selective_scan(x, dt, A, B, C, D, z, dt_bias.float(), delta_softplus=True,
                                          initial_state=cache.ssm, return_last_state=True,
                                          backend=backend)
        else:
            y = selective_scan(x, dt, A, B, C, D, z, dt_bias.float(), delta_softplus=True,
                               backend=backend)
        return self.out_proj(y.transpose(1, 2))
