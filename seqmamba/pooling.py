"""Sequence pooling that respects right padding, streamable over chunks of a long sequence."""

from __future__ import annotations

from typing import Optional

import torch

from .config import POOLING_MODES


class StreamingPool:
    """Pool features (batch, length, k) over the real positions of each row -> (batch, k).

    ``update`` may be called on consecutive chunks of the sequence (a chromosome fed in
    pieces); the result equals pooling the whole sequence at once.
      mean: average over real positions; max: channel-wise maximum over real positions;
      last: the features at each row's last real position;
      center: the features at each row's middle position (the mean of the two middle ones for
        an even length): for fixed windows centred on a site (a splice junction, a variant),
        where a bidirectional model's middle position has read both flanks.  Needs the rows'
        lengths at every update (the middle is unknown until the end otherwise).
    """

    def __init__(self, mode: str):
        if mode not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {mode!r}")
        self.mode = mode
        self.acc: Optional[torch.Tensor] = None
        self.count: Optional[torch.Tensor] = None
        self.offset = 0

    def update(self, feats: torch.Tensor, lengths: Optional[torch.Tensor]) -> None:
        """feats: (batch, chunk, k) for positions offset..offset+chunk; lengths: (batch,) or None."""
        bsz, L, k = feats.shape
        pos = torch.arange(self.offset, self.offset + L, device=feats.device)[None, :]
        valid = (pos < lengths.to(feats.device)[:, None]) if lengths is not None \
            else torch.ones(bsz, L, dtype=torch.bool, device=feats.device)
        f = feats.float()
        if self.mode == "center":
            if lengths is None:
                raise ValueError("center pooling needs the sequence lengths (the middle of a "
                                 "streamed sequence is unknown until its end)")
            n = lengths.to(feats.device)[:, None]
            valid = (pos == (n - 1) // 2) | (pos == n // 2)
        if self.mode in ("mean", "center"):
            part = (f * valid[..., None]).sum(1)
            n = valid.sum(1, keepdim=True)
            self.acc = part if self.acc is None else self.acc + part
            self.count = n if self.count is None else self.count + n
        elif self.mode == "max":
            part = f.masked_fill(~valid[..., None], float("-inf")).amax(1)
            self.acc = part if self.acc is None else torch.maximum(self.acc, part)
        else:  # last: keep the latest real position seen so far in each row
            last_idx = (valid.long().cumsum(1).argmax(1))  # index of the last True (or 0)
            has = valid.any(1)
            part = f[torch.arange(bsz, device=f.device), last_idx]
            if self.acc is None:
                self.acc = torch.where(has[:, None], part, torch.zeros_like(part))
            else:
                self.acc = torch.where(has[:, None], part, self.acc)
        self.offset += L

    def state(self) -> dict:
        """The running sums as tensors, to save a long sequence's progress (see :meth:`restore`)."""
        return {k: v for k, v in (("acc", self.acc), ("count", self.count)) if v is not None}

    def restore(self, state: dict, offset: int) -> None:
        """Continue from :meth:`state` saved after ``offset`` positions."""
        self.acc, self.count = state.get("acc"), state.get("count")
        self.offset = offset

    def result(self) -> torch.Tensor:
        if self.acc is None:
            raise ValueError("nothing was pooled: the sequence was empty")
        if self.mode in ("mean", "center"):
            return self.acc / self.count.clamp(min=1)
        return self.acc


def pool(feats: torch.Tensor, lengths: Optional[torch.Tensor], mode: str) -> torch.Tensor:
    """feats: (batch, length, k), lengths: (batch,) or None -> (batch, k)."""
    p = StreamingPool(mode)
    p.update(feats, lengths)
    return p.result()
