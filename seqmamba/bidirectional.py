"""Bidirectional mixing: a forward scan and a scan over the reversed sequence, combined.

Padding: batches are right-padded (each row's real tokens first).  Reversing a padded row
end-to-end would feed the pads into the reverse scan before the real tokens and change its
outputs, so only the first ``lengths[b]`` positions of each row are reversed; the pads stay at
the end, where a causal scan never lets them reach a real position.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .config import MambaConfig
from .mixer2 import mixer_class


def flip_length(x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Reverse x: (batch, length, ...) along length within each row's first lengths[b] positions.

    lengths: (batch,) integer, or None to reverse whole rows.  The map is its own inverse.
    """
    if lengths is None:
        return x.flip(1)
    L = x.shape[1]
    pos = torch.arange(L, device=x.device)[None, :]  # (1, L)
    lens = lengths.to(x.device)[:, None]
    idx = torch.where(pos < lens, lens - 1 - pos, pos)  # (batch, L)
    idx = idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


class BiMambaMixer(nn.Module):
    """Forward mixer on x, reverse mixer on flip(x), flipped back and combined ("add" or
    "ew_multiply").  With weight tying the two directions share in_proj and out_proj."""

    def __init__(self, cfg: MambaConfig, layer_idx: int = 0):
        super().__init__()
        self.mode = cfg.bidirectional
        mixer = mixer_class(cfg)
        self.fwd = mixer(cfg, layer_idx)
        self.rev = mixer(cfg, layer_idx)
        if cfg.bidirectional_weight_tie:
            self.rev.in_proj = self.fwd.in_proj
            self.rev.out_proj = self.fwd.out_proj

    def forward(self, hidden: torch.Tensor, cache=None, lengths: Optional[torch.Tensor] = None):
        """hidden: (batch, length, width) -> (batch, length, width); lengths: (batch,) or None."""
        if cache is not None:
            raise ValueError("a bidirectional model reads the whole sequence at once; it cannot "
                             "continue from an inference cache (use a causal model for that)")
        out_f = self.fwd(hidden)
        out_r = flip_length(self.rev(flip_length(hidden, lengths)), lengths)
        return out_f + out_r if self.mode == "add" else out_f * out_r
