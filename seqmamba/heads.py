"""Task heads on the backbone: language model, sequence classification, token classification.

Every model takes ``input_ids: (batch, length)`` and, for right-padded batches,
``attention_mask: (batch, length)`` (1 = real token).  ``chunk_size`` runs long inputs in
pieces with carried state (causal models), so memory is bounded by the chunk, not the length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .cache import InferenceCache, LayerCache
from .config import MambaConfig
from .inputs import check_input_ids, check_waveform
from .model import (MambaBackbone, init_weights, lengths_from_mask, weight_decay_groups,
                    run_chunked)
from .pooling import StreamingPool
from .rc import RCTokenHead
from .transformer import KVCache


@dataclass
class ModelOutput:
    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None
    pooled: Optional[torch.Tensor] = None  # (batch, feature_dim) for sequence classification


class MambaPreTrainedModel(nn.Module):
    """Shared plumbing: config, inference cache, parameter groups, save/load."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        if not isinstance(config, MambaConfig):
            raise ValueError(f"config must be a seqmamba.MambaConfig, got {type(config).__name__}")
        self.config = config
        self.backbone = MambaBackbone(config)
        self.scan_backend: Optional[str] = None

    def set_scan_backend(self, name: Optional[str]) -> "MambaPreTrainedModel":
        """Run every scan of this model on the backend ``name`` ("cpu", "torch", "triton",
        "reference"; None: the dispatcher's choice for each call's device and dtype).  A
        choice of the machine, not of the model: it is not saved.  Returns the model."""
        from .mixer import MambaMixer

        for m in self.modules():
            if isinstance(m, MambaMixer):
                m.scan_backend = name
        self.scan_backend = name
        return self

    def _prepare(self, input_ids, attention_mask, inference_cache, chunk_size):
        """Validate the inputs; return the real length of each row in positions (or None).

        For a waveform model ``input_ids`` is (batch, samples) float audio, the mask is over
        samples, and lengths are counted in frames."""
        waveform = self.config.input_type == "waveform"
        if waveform:
            check_waveform(input_ids)
        else:
            check_input_ids(input_ids, self.config.vocab_size)
        lengths = lengths_from_mask(attention_mask, input_ids)
        if waveform and lengths is not None:
            frame = self.config.frontend.frame_size
            lengths = (lengths + frame - 1) // frame
        if waveform and chunk_size and chunk_size % self.config.frontend.frame_size:
            raise ValueError(f"chunk_size ({chunk_size}) must be a multiple of frame_size "
                             f"({self.config.frontend.frame_size}) for waveform input")
        if (inference_cache is not None or chunk_size) and not self.config.causal:
            raise ValueError("inference_cache and chunk_size need a causal model; this one is "
                             "bidirectional or reverse-complement equivariant and reads the whole "
                             "sequence at once")
        if inference_cache is not None:
            if inference_cache.batch_size != input_ids.shape[0]:
                raise ValueError(f"inference_cache was allocated for batch {inference_cache.batch_size}, "
                                 f"input_ids has batch {input_ids.shape[0]}")
            if attention_mask is not None and not bool(attention_mask.bool().all()):
                raise ValueError("a padded batch cannot continue from an inference cache (the pads "
                                 "would enter the state); feed equal-length sequences")
        return lengths

    def allocate_inference_cache(self, batch_size: int, dtype: Optional[torch.dtype] = None,
                                 device: Optional[torch.device] = None) -> InferenceCache:
        """Zero conv and SSM state for every layer (a transformer: empty key/value caches);
        pass it to forward to continue a sequence."""
        if not self.config.causal:
            raise ValueError("only causal models have a recurrent inference cache")
        p = self.backbone.embedding.weight
        c = self.config
        if c.arch == "transformer":
            return InferenceCache([KVCache.empty(batch_size, c.n_head, c.d_model // c.n_head,
                                                 dtype or p.dtype, device or p.device)
                                   for _ in range(c.n_layer)], batch_size)
        if c.arch == "mamba2":
            conv_dim = c.d_inner + 2 * c.n_groups * c.d_state
            return InferenceCache([LayerCache(
                torch.zeros(batch_size, conv_dim, c.d_conv - 1, dtype=dtype or p.dtype,
                            device=device or p.device),
                torch.zeros(batch_size, c.d_inner // c.head_dim, c.head_dim, c.d_state,
                            dtype=torch.float32, device=device or p.device))
                for _ in range(c.n_layer)], batch_size)
        return InferenceCache.allocate(c.n_layer, batch_size, c.d_inner, c.d_conv, c.d_state,
                                       dtype or p.dtype, device or p.device)

    def param_groups(self, weight_decay: float) -> list:
        """Optimizer parameter groups: weight decay on matrices only (not on biases, norms,
        A_log, D)."""
        return weight_decay_groups(self, weight_decay)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())

    def save_pretrained(self, directory) -> None:
        from .checkpoint import save_pretrained

        save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory, **config_overrides):
        """Load a seqmamba, mamba-ssm or Hugging Face ``MambaForCausalLM`` directory."""
        from .checkpoint import from_pretrained

        return from_pretrained(cls, directory, **config_overrides)


class MambaLMHeadModel(MambaPreTrainedModel):
    """Next-token language model: logits (batch, length, vocab_size) over the next token."""


    def __init__(self, config: MambaConfig):
        super().__init__(config)
        if config.input_type != "tokens":
            raise ValueError("MambaLMHeadModel predicts tokens and needs token input "
                             "(input_type='tokens'; for audio, mu-law tokens)")
        if not config.causal:
            raise ValueError("MambaLMHeadModel predicts the next token and needs a causal model; a "
                             "bidirectional or reverse-complement equivariant one reads the sequence "
                             "from both ends and would see the token it predicts (use those with "
                             "the classification heads)")
        self.lm_head = nn.Linear(config.d_model, config.padded_vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.backbone.embedding.weight
        init_weights(self, config)

    def _logits(self, ids, lengths, cache, num_last_tokens):
        h = self.backbone(ids, lengths, cache)
        if num_last_tokens:
            h = h[:, -num_last_tokens:]
        return self.lm_head(h)[..., : self.config.vocab_size]

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None,
                inference_cache: Optional[InferenceCache] = None,
                chunk_size: Optional[int] = None, num_last_tokens: int = 0) -> ModelOutput:
        """input_ids: (batch, length) -> logits (batch, length or num_last_tokens, vocab_size).

        labels: (batch, length) token ids, usually input_ids; the loss is the mean
        cross-entropy of predicting labels[:, t+1] from position t, skipping -100 and padding.
        """
        lengths = self._prepare(input_ids, attention_mask, inference_cache, chunk_size)
        if chunk_size and input_ids.shape[1] > chunk_size:
            cache = inference_cache if inference_cache is not None else \
                self.allocate_inference_cache(input_ids.shape[0])
            parts = run_chunked(lambda ids, c: self._logits(ids, None, c, 0), input_ids, cache,
                                chunk_size)
            logits = torch.cat(parts, dim=1)
            if num_last_tokens:
                logits = logits[:, -num_last_tokens:]
        else:
            logits = self._logits(input_ids, lengths, inference_cache, num_last_tokens)
        loss = None
        if labels is not None:
            if num_last_tokens:
                raise ValueError("labels need logits for every position; drop num_last_tokens")
            target = labels[:, 1:].clone()
            if attention_mask is not None:
                target[attention_mask[:, 1:] == 0] = -100
            loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                   target.reshape(-1), ignore_index=-100)
        return ModelOutput(logits=logits, loss=loss)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, cache: InferenceCache) -> torch.Tensor:
        """One recurrent step: tokens (batch,) -> next-token logits (batch, vocab_size), through
        the general forward on one position.  A loop over many tokens is faster through
        :class:`seqmamba.stepper.RecurrentStepper`, which :meth:`generate` uses."""
        return self.forward(tokens[:, None], inference_cache=cache).logits[:, -1]

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, **kw) -> torch.Tensor:
        """Sample a continuation; see :func:`seqmamba.generation.generate`."""
        from .generation import generate

        return generate(self, input_ids, max_new_tokens, **kw)


class MambaForMaskedLM(MambaPreTrainedModel):
    """Masked language model (the BERT, Caduceus and GPN objective): logits (batch, length,
    vocab_size) over the token at every position, from a backbone that reads both ways
    (``bidirectional`` and/or ``rc_equivariant``).

    Under ``rc_equivariant`` the head reads the two halves apart, with the weight rows of the
    complement tokens for the reverse-complement half (Caduceus's RCPS head):
    ``logits = h_fwd W^T + flip_c(h_rc) W[complement]^T``, so the logits of the reverse
    complement at the mirrored position are those of the sequence with tokens complemented."""

    def __init__(self, config: MambaConfig):
        super().__init__(config)
        if config.input_type != "tokens":
            raise ValueError("MambaForMaskedLM predicts tokens and needs token input")
        if config.causal:
            raise ValueError("MambaForMaskedLM needs a model that reads both directions "
                             "(bidirectional='add' and/or rc_equivariant=True); a causal model "
                             "is a next-token MambaLMHeadModel")
        self.lm_head = nn.Linear(config.mixer_width, config.padded_vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.backbone.embedding.weight
        if config.rc_equivariant:
            comp = torch.arange(config.padded_vocab_size)
            comp[: config.vocab_size] = torch.tensor(config.complement_map)
            self.register_buffer("complement", comp, persistent=False)
        init_weights(self, config)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Backbone hidden states (batch, length, d_model) -> logits (batch, length, vocab_size)."""
        w = self.lm_head.weight.to(hidden.dtype)
        if self.config.rc_equivariant:
            k = hidden.shape[-1] // 2
            logits = hidden[..., :k] @ w.t() + hidden[..., k:].flip(-1) @ w[self.complement].t()
        else:
            logits = hidden @ w.t()
        return logits[..., : self.config.vocab_size]

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None) -> ModelOutput:
        """input_ids: (batch, length), masked positions holding the mask token -> logits
        (batch, length, vocab_size).  labels: (batch, length) true ids at the positions the
        loss is over and -100 elsewhere (and at padding); the loss is their mean
        cross-entropy."""
        lengths = self._prepare(input_ids, attention_mask, None, None)
        logits = self.head(self.backbone(input_ids, lengths))
        loss = None
        if labels is not None:
            target = labels.clone()
            if attention_mask is not None:
                target[attention_mask == 0] = -100
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                   target.reshape(-1), ignore_index=-100)
        return ModelOutput(logits=logits, loss=loss)


class MambaForSequenceClassification(MambaPreTrainedModel):
    """One label per sequence: pooled features (mean / last / max / center of the real
    positions) -> logits (batch, num_labels)."""

    def __init__(self, config: MambaConfig):
        super().__init__(config)
        self.classifier = nn.Linear(self.backbone.feature_dim, config.num_labels)
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        init_weights(self, config)

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None, chunk_size: Optional[int] = None,
                pooling: Optional[str] = None) -> ModelOutput:
        """input_ids: (batch, length) -> logits (batch, num_labels); labels: (batch,) class ids."""
        lengths = self._prepare(input_ids, attention_mask, None, chunk_size)
        pool = StreamingPool(pooling or self.config.pooling)
        if lengths is None and pool.mode == "center":  # unpadded: every row is full length
            n = input_ids.shape[1]
            if self.config.input_type == "waveform":
                n = -(-n // self.config.frontend.frame_size)
            lengths = torch.full((input_ids.shape[0],), n, dtype=torch.long, device=input_ids.device)

        def pool_features(f):
            pool.update(f, lengths)

        if chunk_size and input_ids.shape[1] > chunk_size:
            cache = self.allocate_inference_cache(input_ids.shape[0])
            # StreamingPool masks by absolute position, so each chunk gets the full lengths.
            run_chunked(lambda ids, c: pool_features(self.backbone.features(
                self.backbone(ids, None, c))), input_ids, cache, chunk_size)
        else:
            pool_features(self.backbone.features(self.backbone(input_ids, lengths)))
        pooled = pool.result()
        logits = self.classifier(self.drop(pooled.to(self.classifier.weight.dtype)))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return ModelOutput(logits=logits, loss=loss, pooled=pooled)


class MambaForTokenClassification(MambaPreTrainedModel):
    """One label per position: logits (batch, length, num_labels).  Under rc_equivariant the
    head is :class:`RCTokenHead`, so strand classes swap (``config.label_complement``) when
    the sequence is reverse-complemented."""

    def __init__(self, config: MambaConfig):
        super().__init__(config)
        if config.rc_equivariant:
            self.classifier = RCTokenHead(self.backbone.feature_dim, config.num_labels,
                                          config.label_complement)
        else:
            self.classifier = nn.Linear(self.backbone.feature_dim, config.num_labels)
        init_weights(self, config)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Backbone hidden states (batch, length, d_model) -> logits (batch, length, C)."""
        if self.config.rc_equivariant:
            return self.classifier(hidden)
        return self.classifier(hidden.to(self.classifier.weight.dtype))

    def _logits(self, ids, lengths, cache):
        return self.head(self.backbone(ids, lengths, cache))

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None, chunk_size: Optional[int] = None,
                inference_cache: Optional[InferenceCache] = None) -> ModelOutput:
        """input_ids: (batch, length) -> logits (batch, length, num_labels); labels:
        (batch, length) class ids, -100 (and padding) ignored."""
        lengths = self._prepare(input_ids, attention_mask, inference_cache, chunk_size)
        if chunk_size and input_ids.shape[1] > chunk_size:
            cache = inference_cache if inference_cache is not None else \
                self.allocate_inference_cache(input_ids.shape[0])
            logits = torch.cat(run_chunked(lambda ids, c: self._logits(ids, None, c), input_ids,
                                           cache, chunk_size), dim=1)
        else:
            logits = self._logits(input_ids, lengths, inference_cache)
        loss = None
        if labels is not None:
            target = labels.clone()
            if attention_mask is not None:
                target[attention_mask == 0] = -100
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1),
                                   ignore_index=-100)
        return ModelOutput(logits=logits, loss=loss)
