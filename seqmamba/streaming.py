"""A causal model over a sequence of any length, in chunks with a carried state.

One implementation for every place that reads a long sequence piece by piece: DNA prediction
along a chromosome, audio prediction over a long recording, and held-out bits per token in
training.  The state between chunks (each layer's convolution window and SSM state, plus the
prediction for the next chunk's first token) can be saved as a flat dict of tensors and
restored, so a long record stopped half-way resumes where it was with the same numbers.

    stream = Stream(model, batch=1)
    bits = NextTokenBits()
    for ids in pieces:                         # (batch, chunk) token ids, in order
        h = stream.hidden(ids)                 # (batch, chunk, d_model)
        bits.update(stream.logits(h), ids)     # per-position bits (batch, chunk)
    bits.per_token()                           # bits per token over the whole sequence
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch

LN2 = math.log(2.0)


class Stream:
    """A causal model (``MambaLMHeadModel`` or a classifier with a causal backbone) run over
    consecutive chunks of one batch of sequences, its recurrent state carried between them."""

    def __init__(self, model, batch: int = 1):
        if not model.config.causal:
            raise ValueError("a bidirectional or RC-equivariant model reads the whole sequence "
                             "at once; it cannot be streamed in chunks")
        self.model = model
        self.cache = model.allocate_inference_cache(batch)

    @property
    def offset(self) -> int:
        """Positions read so far."""
        return int(self.cache.seqlen_offset)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (batch, chunk) -> the backbone's hidden states (batch, chunk, d_model), the state
        advanced past the chunk."""
        return self.model.backbone(ids, None, self.cache)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states (batch, chunk, d_model) -> next-token logits (batch, chunk, vocab) in
        float32, the vocabulary's padding columns cut off."""
        return self.model.lm_head(hidden)[..., : self.model.config.vocab_size].float()

    def state(self) -> Dict[str, torch.Tensor]:
        """Each layer's carried state: ``conv.{i}`` and ``ssm.{i}`` tensors (a transformer's:
        ``k.{i}`` and ``v.{i}``, every key and value so far)."""
        return {f"{name}.{i}": t for i, layer in enumerate(self.cache.layers)
                for name, t in vars(layer).items()}

    def restore(self, state: Dict[str, torch.Tensor], offset: int) -> None:
        """Continue after ``offset`` positions from :meth:`state` (its keys are consumed)."""
        for i, layer in enumerate(self.cache.layers):
            for name in list(vars(layer)):
                setattr(layer, name, state.pop(f"{name}.{i}"))
        self.cache.seqlen_offset = offset


class NextTokenBits:
    """Bits spent on each token given every token before it, fed chunk by chunk.

    Token t of a chunk is scored by the logits at t - 1; the chunk's first token by the last
    logits of the chunk before (kept here), and the sequence's very first token by nothing (it
    has no prediction: NaN, not counted).  With ``mask`` (batch, chunk) only tokens whose mask is
    1 count (padding after a window's end)."""

    def __init__(self):
        self.total, self.count = 0.0, 0
        self.prev: Optional[torch.Tensor] = None  # (batch, vocab) log-probs for the next token

    def update(self, logits: torch.Tensor, ids: torch.Tensor,
               mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """logits (batch, chunk, vocab), ids (batch, chunk) -> bits of each token (batch, chunk)
        float32, NaN where a token has no prediction or is masked out."""
        logp = logits.float().log_softmax(-1)
        lp = torch.full(ids.shape, float("nan"), device=logp.device)
        lp[:, 1:] = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
        if self.prev is not None:
            lp[:, 0] = self.prev.gather(-1, ids[:, :1])[:, 0]
        if mask is not None:
            lp = lp.masked_fill(~mask.to(lp.device).bool(), float("nan"))
        bits = -lp / LN2
        ok = ~torch.isnan(bits)
        self.total += float(bits[ok].double().sum())
        self.count += int(ok.sum())
        self.prev = logp[:, -1]
        return bits

    def start_sequence(self) -> None:
        """The next chunk begins new sequences (windows): their first tokens are not scored."""
        self.prev = None

    def per_token(self) -> float:
        """Mean bits per scored token so far (NaN when none was scored)."""
        return self.total / self.count if self.count else math.nan

    def state(self) -> Dict[str, torch.Tensor]:
        """The running sums and the carried prediction as tensors (see :meth:`restore`)."""
        out = {"bits": torch.tensor([self.total, float(self.count)], dtype=torch.float64)}
        if self.prev is not None:
            out["prev_logits"] = self.prev
        return out

    def restore(self, state: Dict[str, torch.Tensor]) -> None:
        """Continue from :meth:`state` (its keys are consumed)."""
        bits = state.pop("bits")
        self.total, self.count = float(bits[0]), int(bits[1])
        self.prev = state.pop("prev_logits", None)
        if self.prev is not None and self.prev.dim() == 1:  # saved by an earlier version: (vocab,)
            self.prev = self.prev[None]
