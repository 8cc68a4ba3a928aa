"""Audio front ends: raw samples (batch, samples) -> (batch, frames, d_model) embeddings.

Both cut the waveform into non-overlapping frames, so a chunk of a multiple of the frame size
embeds exactly as the same samples do inside the whole signal (chunked processing stays exact).
``waveform_embedding(cfg)`` builds the one the config names (``frontend``: "linear" or
"filterbank").
"""

from __future__ import annotations

import math

import torch
from torch import nn


def frames_of(wave: torch.Tensor, frame: int) -> torch.Tensor:
    """(batch, samples) -> (batch, ceil(samples / frame), frame), the last frame zero-padded."""
    pad = (-wave.shape[1]) % frame
    if pad:
        wave = nn.functional.pad(wave, (0, pad))
    return wave.view(wave.shape[0], -1, frame)


class WaveformEmbedding(nn.Module):
    """Raw samples (batch, samples) -> (batch, ceil(samples / frame), d_model): non-overlapping
    frames of ``frame`` samples, each projected linearly (the last frame zero-padded).

    Non-overlapping frames keep the model chunkable: a chunk of a multiple of ``frame``
    samples gives exactly the frames of the whole signal."""

    def __init__(self, frame: int, d_model: int):
        super().__init__()
        self.frame = frame
        self.proj = nn.Linear(frame, d_model)

    @property
    def weight(self) -> torch.Tensor:  # the model's dtype/device, like nn.Embedding.weight
        return self.proj.weight

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.proj(frames_of(wave, self.frame).to(self.proj.weight.dtype))


class FilterbankEmbedding(nn.Module):
    """Raw samples (batch, samples) -> (batch, ceil(samples / frame), d_model) through a learned
    filterbank: inside each non-overlapping frame, ``filters`` FIR filters of ``taps`` taps slide
    with stride ``taps // 8``; the log of each filter's mean squared output over the frame (a
    band energy, as in a log spectrogram, but with learned bands) is projected to d_model.

    Why: a linear projection of raw frames changes completely when a sound moves by a few
    samples, so it has to learn shift invariance from data; band energies do not care where in
    the frame a cycle starts, so the model sees voice-independent spectral shape from the start.
    Frame-local like ``WaveformEmbedding``, so chunked processing stays exact."""

    EPS = 1e-6  # energy floor: about -60 dB below a full-scale sine's energy (0.5)

    VOICED_DB = 40.0  # cmn: frames within this of the clip's loudest frame set the mean

    def __init__(self, frame: int, d_model: int, filters: int, taps: int,
                 norm=None):
        super().__init__()
        self.norm = norm
        self.frame, self.taps = frame, taps
        self.stride = max(1, taps // 8)
        self.conv = nn.Conv1d(1, filters, taps, stride=self.stride, bias=False)
        self.proj = nn.Linear(filters, d_model)

    weight = WaveformEmbedding.weight

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.proj(self.band_energies(wave).to(self.proj.weight.dtype))

    def band_energies(self, wave: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, ceil(samples / frame), filters) float32 log band
        energies, mean-normalised with norm='cmn'."""
        frames = frames_of(wave, self.frame).to(self.conv.weight.dtype)  # (batch, T, frame)
        bsz, t, _ = frames.shape
        # energies and their log in fp32: squares of small bf16 values underflow the floor
        energy = self.conv(frames.reshape(bsz * t, 1, self.frame)).float().pow(2).mean(-1)
        feats = torch.log(energy + self.EPS).view(bsz, t, -1)  # (batch, T, filters)
        if self.norm == "cmn":
            feats = self.mean_normalise(feats)
        return feats

    def mean_normalise(self, feats: torch.Tensor) -> torch.Tensor:
        """(batch, T, filters) log energies -> the same less, per clip and filter, the mean over
        the clip's voiced frames (frame energy within ``VOICED_DB`` of its loudest frame's):
        silence and zero padding do not move the mean, so a clip's length does not either.
        A frame's energy is the log of its mean band energy (the loud bands count, not the
        many quiet ones a mean of logs would let the floor decide)."""
        level = torch.logsumexp(feats, -1)  # (batch, T): log total band energy
        floor = level.amax(1, keepdim=True) - self.VOICED_DB * math.log(10) / 10
        w = (level >= floor).to(feats.dtype).unsqueeze(-1)  # (batch, T, 1)
        return feats - (feats * w).sum(1, keepdim=True) / w.sum(1, keepdim=True)


def waveform_embedding(cfg) -> nn.Module:
    fe = cfg.frontend
    if fe.kind == "filterbank":
        taps = fe.taps or max(1, fe.frame_size // 2)
        return FilterbankEmbedding(fe.frame_size, cfg.d_model, fe.filters, taps, fe.norm)
    return WaveformEmbedding(fe.frame_size, cfg.d_model)
