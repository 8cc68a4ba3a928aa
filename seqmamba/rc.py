"""Reverse-complement parameter sharing (RCPS, as in Caduceus, Schiff et al. 2024).

Hidden states of width 2k hold a forward half and a reverse-complement half.  Write
RC(h) = flip of h over length and over all 2k channels (which swaps the halves and reverses
the channels in each).  Every layer here satisfies f(RC(h)) = RC(f(h)):

* embedding:  emb(x) = [E(x), flip_c(E(comp(x)))]            (k channels each)
* any module m on k channels:  f(h) = [m(h1), RC1(m(RC1(h2)))], RC1 = flip over length and k
  channels; m may look anywhere along the sequence (it can be bidirectional).
* norms and residual sums act per half or elementwise.

so the backbone maps the reverse complement of a sequence to RC of its hidden states.  Heads
then read ``h1 + flip_c(h2)`` per position (k channels), which becomes position-reversed under
RC: token outputs are reversed and pooled outputs are invariant.  A token head whose classes
have a strand (a + strand gene becomes a - strand gene on the other strand) reads the two
halves apart instead (:class:`RCTokenHead`).  (An RC-equivariant model reads
the sequence from both ends, so it is not a causal next-token model.)
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .bidirectional import flip_length


def rc_flip(h: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Reverse h: (batch, length, channels) along length (within lengths) and channels."""
    return flip_length(h, lengths).flip(-1)


class RCPSEmbedding(nn.Module):
    """Token ids (batch, length) -> (batch, length, 2k) with the RC symmetry above."""

    def __init__(self, num_embeddings: int, k: int, complement_map):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_embeddings, k))
        comp = torch.arange(num_embeddings)
        comp[: len(complement_map)] = torch.tensor(list(complement_map))
        self.register_buffer("complement", comp, persistent=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        fwd = nn.functional.embedding(input_ids, self.weight)
        rc = nn.functional.embedding(self.complement[input_ids], self.weight)
        return torch.cat([fwd, rc.flip(-1)], dim=-1)


class RCPSWrapper(nn.Module):
    """Apply ``module`` (k channels -> k channels) to both halves of a 2k-channel hidden state."""

    def __init__(self, module: nn.Module, takes_lengths: bool = False):
        super().__init__()
        self.module = module
        self.takes_lengths = takes_lengths  # pass lengths on (mixers) or not (norms)

    def forward(self, h: torch.Tensor, lengths: Optional[torch.Tensor] = None, **kw) -> torch.Tensor:
        """h: (batch, length, 2k) -> (batch, length, 2k); lengths: (batch,) or None."""
        k = h.shape[-1] // 2
        if self.takes_lengths:
            kw["lengths"] = lengths
        fwd = self.module(h[..., :k], **kw)
        rc = rc_flip(self.module(rc_flip(h[..., k:], lengths), **kw), lengths)
        return torch.cat([fwd, rc], dim=-1)


def rc_features(h: torch.Tensor) -> torch.Tensor:
    """(batch, length, 2k) -> (batch, length, k): h1 + flip_c(h2), the per-position features
    heads read; reversed over length under RC of the input."""
    k = h.shape[-1] // 2
    return h[..., :k] + h[..., k:].flip(-1)


class RCTokenHead(nn.Module):
    """Per-position logits (batch, length, C) from RCPS hidden states (batch, length, 2k) that
    are RC-equivariant with a permutation of the classes: ``label_complement[c]`` is the class
    c becomes on the other strand.  Logits of the reverse complement at the mirrored position
    are those of the sequence with classes permuted:  out(RC x)[L-1-i, P(c)] = out(x)[i, c].

    Why it holds: with u = h1 and v = flip_c(h2) at a position, RC of the input swaps u and v at
    the mirrored position.  logit_c = A_c . u + A_P(c) . v + b_c with b_P(c) = b_c, so
    logit'_P(c) = A_P(c) . v + A_c . u + b_c = logit_c.  For a strandless class (P(c) = c) this
    is A_c . (u + v): the usual head on ``rc_features``, with the same parameter shapes
    (weight (C, k), bias (C,)), so a checkpoint of either loads into the other."""

    def __init__(self, k: int, num_labels: int, label_complement=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_labels, k))
        self.bias = nn.Parameter(torch.zeros(num_labels))
        perm = torch.tensor(list(label_complement) if label_complement is not None
                            else range(num_labels))
        self.register_buffer("perm", perm, persistent=False)
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Linear's default

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        k = h.shape[-1] // 2
        u, v = h[..., :k], h[..., k:].flip(-1)
        w = self.weight.to(h.dtype)
        bias = 0.5 * (self.bias + self.bias[self.perm])
        return u @ w.t() + v @ w[self.perm].t() + bias.to(h.dtype)
