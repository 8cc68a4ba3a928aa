"""Checks of what a user hands a model: token ids or waveforms, with messages that say what is
wrong and how to fix it (ValueError)."""

from __future__ import annotations

import torch


def check_input_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"input_ids must be a (batch, length) tensor of token ids, got {shape}")
    if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    if input_ids.shape[1] == 0:
        raise ValueError("input_ids has length 0; give at least one token per sequence")
    lo, hi = int(input_ids.min()), int(input_ids.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"input_ids holds token ids outside the vocabulary 0..{vocab_size - 1} "
                         f"(min {lo}, max {hi}); check the tokenizer matches the model")


def check_waveform(wave: torch.Tensor) -> None:
    if not isinstance(wave, torch.Tensor) or wave.dim() != 2:
        shape = tuple(wave.shape) if isinstance(wave, torch.Tensor) else type(wave).__name__
        raise ValueError(f"a waveform model takes (batch, samples) float audio, got {shape}")
    if not wave.dtype.is_floating_point:
        raise ValueError(f"waveform input must be floating point samples, got dtype {wave.dtype}")
    if wave.shape[1] == 0:
        raise ValueError("waveform input has 0 samples")
    if not bool(torch.isfinite(wave).all()):
        raise ValueError("waveform input holds NaN or infinite samples")
