"""Normalisation layers: RMSNorm (Mamba's default) and LayerNorm, computed in float32."""

from __future__ import annotations

import torch
from torch import nn


class _KeepFP32(nn.Module):
    """Norm weights stay float32 when the model is cast to bf16/fp16 (they scale every
    activation; rounding them to 8 mantissa bits shifts the whole residual stream)."""

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        for p in self.parameters(recurse=False):
            if p.is_floating_point() and p.dtype != torch.float32:
                p.data = p.data.float()
        return self


class RMSNorm(_KeepFP32):
    """x / rms(x) * weight over the last dimension.  x: (..., d) -> (..., d) in x's dtype.

    The mean square is taken in float32 whatever the input dtype: in bf16 the sum of squares
    over a few hundred channels loses most of its digits.
    """

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        self.weight._no_weight_decay = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


class LayerNorm(_KeepFP32, nn.LayerNorm):
    """nn.LayerNorm computed in float32, returned in the input's dtype."""

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__(d, eps=eps)
        self.weight._no_weight_decay = True
        self.bias._no_weight_decay = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.layer_norm(x.float(), self.normalized_shape, self.weight.float(),
                                        self.bias.float(), self.eps).to(x.dtype)


def make_norm(d: int, rms_norm: bool, eps: float) -> nn.Module:
    return RMSNorm(d, eps) if rms_norm else LayerNorm(d, eps)
