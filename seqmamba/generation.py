"""Sampling from a causal language model: one parallel prefill, then O(1) recurrent steps."""

from __future__ import annotations

import warnings
from typing import Optional

import torch


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Mask (with -inf) all but the top_k logits and the smallest set whose probability
    reaches top_p.  logits: (batch, vocab) -> (batch, vocab)."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # Drop a token when the tokens ranked above it already reach top_p; the first stays.
        drop_sorted = probs.cumsum(-1) - probs >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """logits: (batch, vocab) -> token ids (batch,).  temperature 0 means greedy."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    # Gumbel-max: argmax(logits + G), G = -log(E) with E ~ Exp(1), is a draw from
    # softmax(logits); half the cost of softmax + multinomial, which matters when audio
    # generation samples 16,000 times a second of sound
    # (E is clamped away from 0: a zero would make G infinite and pick its token, even a
    # filtered one, whatever its probability)
    gumbel = torch.empty_like(logits).exponential_(generator=generator).clamp_(min=1e-30).log_()
    return (logits - gumbel).argmax(-1)


@torch.no_grad()
def generate(model, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, seed: Optional[int] = None,
             eos_token_id: Optional[int] = None, chunk_size: Optional[int] = None,
             suppress_tokens: Optional[list] = None, compile: bool = False) -> torch.Tensor:
    """Continue input_ids (batch, prompt_length) by max_new_tokens sampled tokens.

    The prompt is read in one parallel pass (in pieces of ``chunk_size`` for very long
    prompts), then each new token costs one recurrent step whatever the context length.
    Rows that emit ``eos_token_id`` keep emitting it.  ``suppress_tokens`` are never sampled
    (e.g. special tokens).  ``compile=True`` compiles the recurrent step of a float32 model
    (torch.compile: ~20 s once, then ~3x faster steps on a CPU; worth it for long outputs such as
    audio).  Returns (batch, prompt_length + max_new_tokens).
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
    was_training = model.training
    model.eval()
    try:
        device = model.backbone.embedding.weight.device
        generator = None
        if seed is not None:
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
        input_ids = input_ids.to(device)
        cache = model.allocate_inference_cache(input_ids.shape[0])
        logits = model(input_ids, inference_cache=cache, chunk_size=chunk_size,
                       num_last_tokens=1).logits[:, -1]
        from .stepper import RecurrentStepper

        stepper = (RecurrentStepper(model, compile=compile) if model.config.selective
                   and model.config.arch in ("mamba", "mamba2") else None)
        if compile and stepper is None:
            warnings.warn("generate(compile=True) is ignored: a non-selective (time-invariant) "
                          "model or a transformer steps through model.step, which is not "
                          "compiled",
                          RuntimeWarning, stacklevel=2)
        out = [input_ids]
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=device)
        for i in range(max_new_tokens):
            if suppress_tokens:
                logits[:, suppress_tokens] = float("-inf")
            tok = sample_next(logits, temperature, top_k, top_p, generator)
            if eos_token_id is not None:
                tok = torch.where(done, torch.full_like(tok, eos_token_id), tok)
                done |= tok == eos_token_id
            out.append(tok[:, None])
            if i + 1 < max_new_tokens:
                logits = stepper(tok, cache) if stepper is not None else model.step(tok, cache)
        return torch.cat(out, dim=1)
    finally:
        model.train(was_training)
