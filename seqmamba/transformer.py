"""Transformer++ blocks: the attention baseline of the Mamba paper, on seqmamba's backbone.

The recipe the Mamba paper calls Transformer++ (after LLaMA): pre-norm RMSNorm, rotary
position embeddings (RoPE) on queries and keys, no biases, and a SwiGLU MLP of width
about 8/3 d_model.  A block has the Mamba block's interface,
``(hidden, residual) -> (hidden, residual)``, so ``MambaBackbone`` stacks it in place of the
Mamba block when ``config.arch == "transformer"`` and everything around it (embeddings, heads,
pooling, checkpoints, training and prediction commands) is shared.

    x: (batch, length, d_model)
    q, k, v = split(qkv(x)) -> each (batch, n_head, length, head_dim); RoPE on q and k
    attn = softmax(q k^T / sqrt(head_dim) + mask) v  (scaled_dot_product_attention)
    causal (``config.bidirectional is None``) or both sides; right padding is masked out

Generation keeps a KV cache (``KVCache``), one per layer, in ``InferenceCache.layers``: a
step costs O(context), not O(1) as Mamba's does, and the cache grows with the context up to
``config.attn_window`` positions (0: without bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .config import MambaConfig
from .norms import make_norm

ROPE_BASE = 10000.0


@dataclass
class KVCache:
    """k, v: (batch, n_head, context, head_dim), the keys (before RoPE) and values of the last
    ``context`` positions seen (all of them, or the attention window)."""

    k: torch.Tensor
    v: torch.Tensor

    @classmethod
    def empty(cls, batch: int, n_head: int, head_dim: int, dtype, device) -> "KVCache":
        z = torch.zeros(batch, n_head, 0, head_dim, dtype=dtype, device=device)
        return cls(z, z.clone())


def rope(x: torch.Tensor, offset: int) -> torch.Tensor:
    """x (batch, heads, length, head_dim) at positions offset.. -> x rotated by RoPE: each
    channel pair (i, i + head_dim/2) turned by angle pos * base^(-2i/head_dim), so q . k
    depends on the positions' difference only."""
    hd = x.shape[-1]
    inv = ROPE_BASE ** (-torch.arange(0, hd // 2, device=x.device, dtype=torch.float32) * 2 / hd)
    pos = torch.arange(offset, offset + x.shape[-2], device=x.device, dtype=torch.float32)
    ang = pos[:, None] * inv[None, :]  # (length, head_dim / 2)
    cos, sin = ang.cos(), ang.sin()
    a, b = x.float().chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1).to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with RoPE: (batch, length, d_model) -> same shape.

    A causal model with ``config.attn_window`` W > 0 lets each position see the W positions
    ending at it (sliding-window attention, as Mistral's): its cache keeps the last W keys and
    values, so a chromosome streams through it in bounded memory, each layer looking back as
    far as it did in training (stacked, L layers reach L (W - 1) positions back).  Keys are cached before RoPE and turned at use, by their place in the
    cache: attention depends on relative positions only, and angles stay small however far
    into a chromosome the stream is."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.d_model // cfg.n_head
        self.causal = cfg.causal
        self.window = cfg.attn_window if cfg.causal else 0
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cache: Optional[KVCache] = None,
                lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k = torch.cat([cache.k, k.to(cache.k.dtype)], dim=2).to(q.dtype)
            v = torch.cat([cache.v, v.to(cache.v.dtype)], dim=2).to(q.dtype)
            keep = k.shape[2] - self.window if self.window else 0
            cache.k, cache.v = k[:, :, max(keep, 0):], v[:, :, max(keep, 0):]
        s = k.shape[2]
        past = s - t  # keys before the first query
        q, k = rope(q, past), rope(k, 0)
        if self.window and s > self.window:
            y = self._windowed(q, k, v, past)
        else:
            mask = None  # bool (batch or 1, 1, t, s): True where a query may look
            if self.causal and past:  # queries at past.., keys at 0..: a shifted triangle
                mask = _band(past, t, 0, s, 0, x.device)[None, None]
            if lengths is not None and not self.causal:  # causal rows never see right pads
                mask = (torch.arange(s, device=x.device)[None, :] < lengths[:, None])[:, None, None]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                               is_causal=self.causal and mask is None)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))

    def _windowed(self, q, k, v, past: int) -> torch.Tensor:
        """Sliding-window attention in blocks of W queries, each against the W - 1 keys before
        it and its own: O(length W) time and memory, not O(length^2).  q (b, h, t, hd) at
        positions past.., k, v (b, h, past + t, hd) at 0.. -> (b, h, t, hd)."""
        w, t = self.window, q.shape[2]
        out = []
        for i in range(0, t, w):
            qb = q[:, :, i:i + w]
            lo, hi = max(0, past + i - w + 1), past + i + qb.shape[2]
            mask = _band(past + i, qb.shape[2], lo, hi - lo, w, q.device)[None, None]
            out.append(F.scaled_dot_product_attention(qb, k[:, :, lo:hi], v[:, :, lo:hi],
                                                      attn_mask=mask))
        return torch.cat(out, dim=2)


def _band(q0: int, nq: int, k0: int, nk: int, window: int, device=None) -> torch.Tensor:
    """(nq, nk) bool: query at q0 + i may see key at k0 + j when it is not ahead of the query
    and, with a window, less than ``window`` behind it."""
    qpos = q0 + torch.arange(nq, device=device)[:, None]
    kpos = k0 + torch.arange(nk, device=device)[None, :]
    ok = kpos <= qpos
    return ok & (kpos > qpos - window) if window else ok


class SwiGLU(nn.Module):
    """(batch, length, d_model) -> same: out_proj(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        width = cfg.d_ff
        self.gate_up = nn.Linear(cfg.d_model, 2 * width, bias=False)
        self.out_proj = nn.Linear(width, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.out_proj(F.silu(gate) * up)


class TransformerBlock(nn.Module):
    """residual += hidden; residual += attn(norm(residual)); hidden = mlp(norm2(residual)).
    Returns (hidden, residual), as ``MambaBlock`` does."""

    def __init__(self, cfg: MambaConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.residual_in_fp32 = cfg.residual_in_fp32
        self.norm = make_norm(cfg.d_model, cfg.rms_norm, cfg.norm_epsilon)
        self.attn = Attention(cfg)
        self.norm2 = make_norm(cfg.d_model, cfg.rms_norm, cfg.norm_epsilon)
        self.mlp = SwiGLU(cfg)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def forward(self, hidden, residual, cache: Optional[KVCache] = None, lengths=None):
        """hidden, residual (batch, length, d_model) -> (new hidden, residual), same shapes."""
        residual = hidden + residual if residual is not None else hidden
        residual = residual.float() if self.residual_in_fp32 else residual
        dtype = self.attn.qkv.weight.dtype
        normed = self.norm(residual)
        if not torch.is_autocast_enabled(normed.device.type):
            normed = normed.to(dtype)
        residual = residual + self.drop(self.attn(normed, cache, lengths)).to(residual.dtype)
        normed = self.norm2(residual)
        if not torch.is_autocast_enabled(normed.device.type):
            normed = normed.to(dtype)
        return self.drop(self.mlp(normed)), residual
