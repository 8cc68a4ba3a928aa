"""Recurrent inference cache: per layer, the convolution window and the SSM state.

With a cache a forward call continues where the previous one stopped, so a sequence can be fed
in pieces (one token, or chunks of any size) and give the same outputs as one full pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch


@dataclass
class LayerCache:
    """conv: (batch, d_inner, d_conv - 1), the last inputs of the causal convolution;
    ssm: (batch, d_inner, d_state) float32, the state h after the last step seen."""

    conv: torch.Tensor
    ssm: torch.Tensor


@dataclass
class InferenceCache:
    """The state of every layer after ``seqlen_offset`` tokens of a batch of sequences."""

    layers: List[LayerCache]
    batch_size: int
    seqlen_offset: int = 0

    @classmethod
    def allocate(cls, n_layer: int, batch_size: int, d_inner: int, d_conv: int, d_state: int,
                 dtype: torch.dtype, device: Optional[torch.device] = None) -> "InferenceCache":
        layers = [LayerCache(conv=torch.zeros(batch_size, d_inner, d_conv - 1, dtype=dtype, device=device),
                             ssm=torch.zeros(batch_size, d_inner, d_state, dtype=torch.float32,
                                             device=device))
                  for _ in range(n_layer)]
        return cls(layers=layers, batch_size=batch_size)
