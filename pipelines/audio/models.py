"""Audio model directories: where a run's model is, what it was trained for, and what it reads."""

from __future__ import annotations

from pathlib import Path

import torch

from ..model_dirs import model_extra, resolve_model_dir as _resolve
from .mulaw import mulaw_encode

AUDIO_TASKS = ("audio-classify", "audio-lm")
_KINDS = {"audio-lm": "an audio language model (seqmamba audio pretrain)",
          "audio-classify": "an audio classifier (seqmamba audio finetune)"}

__all__ = ["AUDIO_TASKS", "encode_input", "model_extra", "resolve_model_dir"]


def resolve_model_dir(path: Path, tasks=AUDIO_TASKS) -> Path:
    """RUN or RUN/final of an audio command -> the directory holding config.json, whose task
    must be one of ``tasks``."""
    return _resolve(path, "seqmamba audio finetune or pretrain", tasks, _KINDS)


def encode_input(wave: torch.Tensor, encoding: str) -> torch.Tensor:
    """Waveform (batch, samples) -> what the model reads: the samples themselves, or their
    8-bit mu-law class ids for a model started from a mu-law language model."""
    if encoding == "mulaw8":
        return mulaw_encode(wave)
    return wave
