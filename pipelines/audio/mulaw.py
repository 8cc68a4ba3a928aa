"""8-bit mu-law: waveform <-> 256 classes, the token vocabulary of SaShiMi and Mamba audio models.

encode: y = sign(x) ln(1 + mu |x|) / ln(1 + mu), mapped from [-1, 1] to the integers 0..mu
(mu = 255; silence is class 128).  The logarithm spends the classes where speech and music
spend their time, near zero: the step is ~1e-4 there against ~0.03 at full scale.
The formula is torchaudio's (``mu_law_encoding`` / ``mu_law_decoding``, checked equal in the
tests); it is written out here so that out-of-range input is clamped (torchaudio would return
class 256 for x > 1) and NaN is an error rather than an arbitrary class.
"""

from __future__ import annotations

import math

import torch

MU = 255
CLASSES = MU + 1
SILENCE = CLASSES // 2  # the class of a zero sample


def mulaw_encode(x: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """float waveform (any shape, nominally in [-1, 1]; clamped) -> int64 class ids in [0, mu]."""
    if not torch.is_floating_point(x):
        raise TypeError(f"mulaw_encode expects a float waveform, got {x.dtype}")
    if torch.isnan(x).any():
        raise ValueError("mulaw_encode: waveform holds NaN")
    x = x.clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)  # in [-1, 1]
    return ((y + 1) / 2 * mu + 0.5).to(torch.int64)  # +0.5 then truncate: round to nearest


def mulaw_decode(ids: torch.Tensor, mu: int = MU, dtype: torch.dtype = torch.float32
                 ) -> torch.Tensor:
    """int class ids in [0, mu] (any shape) -> float waveform in [-1, 1] (inverse of encode)."""
    if torch.is_floating_point(ids):
        raise TypeError(f"mulaw_decode expects integer class ids, got {ids.dtype}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) > mu):
        raise ValueError(f"mulaw_decode: ids must lie in [0, {mu}], got "
                         f"[{int(ids.min())}, {int(ids.max())}]")
    y = ids.to(dtype) / mu * 2 - 1
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu
