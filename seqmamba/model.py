"""The backbone: embedding, a homogeneous stack of pre-norm residual Mamba blocks, final norm.

Parameter names follow mamba-ssm (``embedding``, ``layers.{i}.mixer.*``, ``layers.{i}.norm``,
``norm_f``) so its checkpoints load without renaming.
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional

import torch
from torch import nn

from .bidirectional import BiMambaMixer
from .cache import InferenceCache
from .config import MambaConfig
from .frontends import waveform_embedding
from .mixer2 import mixer_class
from .norms import make_norm
from .rc import RCPSEmbedding, RCPSWrapper, rc_features
from .transformer import TransformerBlock


class MambaBlock(nn.Module):
    """residual += hidden; hidden = mixer(norm(residual)).  Returns (hidden, residual)."""

    def __init__(self, cfg: MambaConfig, layer_idx: int):
        super().__init__()
        self.residual_in_fp32 = cfg.residual_in_fp32
        self.mixer = self.make_mixer(cfg, layer_idx)
        self.norm = make_norm(cfg.mixer_width, cfg.rms_norm, cfg.norm_epsilon)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    @staticmethod
    def make_mixer(cfg: MambaConfig, layer_idx: int) -> nn.Module:
        if cfg.bidirectional:
            return BiMambaMixer(cfg, layer_idx)
        return mixer_class(cfg)(cfg, layer_idx)

    def add_residual(self, hidden, residual):
        residual = hidden + residual if residual is not None else hidden
        return residual.float() if self.residual_in_fp32 else residual

    def to_mixer_dtype(self, normed: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(normed.device.type):
            return normed
        return normed.to(compute_dtype(self.mixer))

    def forward(self, hidden, residual, cache=None, lengths=None):
        """hidden, residual (batch, length, d_model) -> (new hidden, residual), same shapes."""
        residual = self.add_residual(hidden, residual)
        normed = self.to_mixer_dtype(self.norm(residual))
        return self.drop(self.mixer(normed, cache=cache, lengths=lengths)), residual


class RCPSMambaBlock(MambaBlock):
    """The block under reverse-complement parameter sharing (Caduceus-PS): the hidden width is
    a forward half and a reverse-complement half, and the norm and mixer run on both halves
    with the same weights (``RCPSWrapper``), so the block maps the reverse complement of its
    input to the reverse complement of its output."""

    def __init__(self, cfg: MambaConfig, layer_idx: int):
        super().__init__(cfg, layer_idx)
        self.mixer = RCPSWrapper(self.mixer, takes_lengths=True)
        self.norm = RCPSWrapper(self.norm)
        self.swap_halves = cfg.rc_swap_halves

    def forward(self, hidden, residual, cache=None, lengths=None):
        """hidden, residual (batch, length, d_model) -> (new hidden, residual), same shapes;
        ``lengths`` (batch,) says where each row's reverse complement starts."""
        residual = self.add_residual(hidden, residual)
        if self.swap_halves:
            # Caduceus's fused add+norm treats the second half as the forward one; swapping
            # commutes with RC (which swaps the halves too), so equivariance holds either way.
            k = residual.shape[-1] // 2
            residual = torch.cat([residual[..., k:], residual[..., :k]], dim=-1)
        normed = self.to_mixer_dtype(self.norm(residual, lengths))
        return self.drop(self.mixer(normed, lengths, cache=cache)), residual


def compute_dtype(module: nn.Module) -> torch.dtype:
    """The dtype a module computes in: that of its matrices (A_log, D and norms stay float32)."""
    return next(p.dtype for p in module.parameters()
                if p.dim() >= 2 and not getattr(p, "_no_weight_decay", False))


def lengths_from_mask(attention_mask: Optional[torch.Tensor], input_ids: torch.Tensor):
    """(batch, length) mask of real tokens (1) and right padding (0) -> lengths (batch,) or None."""
    if attention_mask is None:
        return None
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, "
                         f"got {tuple(attention_mask.shape)}")
    mask = attention_mask.bool()
    lengths = mask.sum(1)
    expected = torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths[:, None]
    if not torch.equal(mask, expected):
        raise ValueError("attention_mask must be right-padded (each row: ones, then zeros); "
                         "pad sequences at the end, not the start or the middle")
    if bool((lengths == 0).any()):
        raise ValueError("attention_mask has a row with no real tokens; drop empty sequences")
    return lengths


class MambaBackbone(nn.Module):
    """input_ids (batch, length) -> hidden states (batch, length, d_model) after the final norm."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.input_type == "waveform":
            self.embedding = waveform_embedding(cfg)
        elif cfg.rc_equivariant:
            self.embedding = RCPSEmbedding(cfg.padded_vocab_size, cfg.d_model // 2, cfg.complement_map)
        else:
            self.embedding = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)
        block = (TransformerBlock if cfg.arch == "transformer" else
                 RCPSMambaBlock if cfg.rc_equivariant else MambaBlock)
        self.layers = nn.ModuleList(block(cfg, i) for i in range(cfg.n_layer))
        norm_f = make_norm(cfg.mixer_width, cfg.rms_norm, cfg.norm_epsilon)
        self.norm_f = RCPSWrapper(norm_f) if cfg.rc_equivariant else norm_f

    @property
    def feature_dim(self) -> int:
        """Width of the per-position features heads read (d_model, or d_model/2 under RC)."""
        return self.cfg.mixer_width

    def features(self, hidden: torch.Tensor) -> torch.Tensor:
        return rc_features(hidden) if self.cfg.rc_equivariant else hidden

    def forward(self, input_ids: torch.Tensor, lengths: Optional[torch.Tensor] = None,
                inference_cache: Optional[InferenceCache] = None) -> torch.Tensor:
        hidden = self.embedding(input_ids)
        residual = None
        for i, layer in enumerate(self.layers):
            cache = inference_cache.layers[i] if inference_cache is not None else None
            hidden, residual = layer(hidden, residual, cache=cache, lengths=lengths)
        residual = hidden + residual if residual is not None else hidden
        if self.cfg.rc_equivariant:
            out = self.norm_f(residual, lengths)
        else:
            out = self.norm_f(residual)
        if inference_cache is not None:
            inference_cache.seqlen_offset += input_ids.shape[1]
        if not torch.is_autocast_enabled(out.device.type):
            out = out.to(self.embedding.weight.dtype)  # the heads' dtype
        return out


def init_weights(model: nn.Module, cfg: MambaConfig) -> None:
    """mamba-ssm's initialisation: N(0, initializer_range) embeddings, zero linear biases (but
    the dt bias), and out_proj scaled by 1/sqrt(n_layer) so the residual stream's variance
    does not grow with depth."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.bias is not None:
            if not getattr(module.bias, "_no_reinit", False):
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.Embedding, RCPSEmbedding)):
            nn.init.normal_(module.weight, std=cfg.initializer_range)
    if cfg.rescale_prenorm_residual:
        for name, p in model.named_parameters():
            if name.endswith("out_proj.weight"):
                nn.init.kaiming_uniform_(p, a=math.sqrt(5))
                with torch.no_grad():
                    p /= math.sqrt(cfg.n_layer)


def run_chunked(step: Callable[[torch.Tensor, InferenceCache], object], input_ids: torch.Tensor,
                cache: InferenceCache, chunk_size: int) -> List[object]:
    """Feed input_ids (batch, length) through ``step`` in pieces of chunk_size, carrying cache."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of tokens, got {chunk_size}")
    return [step(input_ids[:, s:s + chunk_size], cache)
            for s in range(0, input_ids.shape[1], chunk_size)]


def weight_decay_groups(module: nn.Module, weight_decay: float) -> list:
    """AdamW parameter groups of ``module``: ``weight_decay`` on its matrices; none on biases,
    norms, A_log, D and other 1-d tensors (decaying them pulls gains and the state's decay
    rates towards 0, which is not regularisation)."""
    decay, no_decay, seen = [], [], set()
    for name, p in module.named_parameters():
        if id(p) in seen or not p.requires_grad:
            continue
        seen.add(id(p))
        if getattr(p, "_no_weight_decay", False) or p.dim() < 2 or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
