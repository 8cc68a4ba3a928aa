"""What ``seqmamba audio pretrain`` runs: a causal language model of 8-bit mu-law samples.

The clips (``pretrain_clips``: a CSV manifest, a folder with ``manifest.csv``, or any folder of
audio files) are read once into memory as uint8 mu-law classes (``load_mulaw``: one array
(samples,) a clip).  Training draws random crops (``MulawCrops``), evaluation scores fixed
held-out windows (``heldout_windows``, ``Windows``); ``collate`` stacks them into input_ids
(batch, seq_len).  ``train_mulaw_lm(a)`` takes the parsed options of ``audio pretrain`` (after
the option checks of its ``run``) and trains, scores and writes RUN.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import List, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..options import backbone_fields
from ..errors import InputError
from .datasets import (Clip, joined_clip_sets, read_clips, split_clips, split_fields,
                       split_method)
from .io import AUDIO_EXTENSIONS, normalize_peak, read_audio
from .mulaw import CLASSES, SILENCE, mulaw_encode


# ---------------------------------------------------------------- clips

def pretrain_clips(source: Path) -> List[Clip]:
    """Clips of a CSV manifest, a folder with manifest.csv, or any folder of audio files."""
    source = Path(source)
    if not source.exists():
        raise InputError("no such file or folder", path=source)
    if source.is_file() or (source / "manifest.csv").is_file():
        return read_clips(source)
    files = sorted(f for f in source.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS
                   and f.is_file() and not any(p.startswith(".") for p in
                                               f.relative_to(source).parts))
    if not files:
        raise InputError("no .wav or .flac files in the folder", path=source,
                         fix="give a folder of audio files or a CSV manifest")
    return [Clip(os.path.abspath(f), "-", source=str(source)) for f in files]


def load_waves(clips: Sequence[Clip], sample_rate: int, peak, max_seconds) -> List[torch.Tensor]:
    """Every clip as a mono float32 waveform (samples,) at ``sample_rate``, scaled to ``peak``
    when given; a bad file is an error naming the manifest line that listed it."""
    out = []
    for c in clips:
        try:
            wave = read_audio(c.path, sample_rate, mono=True, max_seconds=max_seconds)[0][0]
        except InputError as e:
            raise c.error(e) from None
        out.append(normalize_peak(wave, peak) if peak is not None else wave)
    return out


def load_mulaw(clips: Sequence[Clip], sample_rate: int, peak, max_seconds) -> List[np.ndarray]:
    """Every clip as uint8 mu-law classes (read once, kept in memory: 1 byte per sample)."""
    return [mulaw_encode(w).numpy().astype(np.uint8)
            for w in load_waves(clips, sample_rate, peak, max_seconds)]


class MulawCrops(Dataset):
    """Item i of epoch e (a pure function of (seed, e, i)): a crop of ``seq_len`` classes from
    a clip drawn in proportion to its length; a shorter clip is padded and masked.  An item:
    input_ids (seq_len,) int64 mu-law classes, attention_mask (seq_len,) int64 (0 after the
    clip's end)."""

    def __init__(self, arrays: Sequence[np.ndarray], seq_len: int, samples: int, seed: int):
        self.arrays, self.seq_len, self.samples, self.seed, self.epoch = \
            list(arrays), seq_len, samples, seed, 0
        lengths = np.array([len(x) for x in self.arrays], np.float64)
        self.p = lengths / lengths.sum()

    def set_epoch(self, e):
        self.epoch = e

    def __len__(self):
        return self.samples

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        x = self.arrays[int(rng.choice(len(self.arrays), p=self.p))]
        start = int(rng.integers(0, max(0, len(x) - self.seq_len) + 1))
        return _window(x[start:start + self.seq_len], self.seq_len)


def _window(x: np.ndarray, seq_len: int) -> dict:
    """Classes x (n,) uint8, n <= seq_len -> input_ids (seq_len,) int64 (SILENCE after n),
    attention_mask (seq_len,) int64 (1 for the first n)."""
    ids = torch.full((seq_len,), SILENCE, dtype=torch.long)
    ids[:len(x)] = torch.from_numpy(x.astype(np.int64))
    mask = torch.zeros(seq_len, dtype=torch.long)
    mask[:len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def heldout_windows(arrays: Sequence[np.ndarray], seq_len: int, count: int) -> List[np.ndarray]:
    """Non-overlapping windows of ``seq_len`` of every held-out clip (a shorter clip whole),
    then ``count`` of them evenly spread over the set: fixed, so every evaluation (and every
    baseline) scores the same samples."""
    wins = []
    for x in arrays:
        if len(x) < 2:
            continue
        if len(x) <= seq_len:
            wins.append(x)
        else:
            wins += [x[s:s + seq_len] for s in range(0, len(x) - seq_len + 1, seq_len)]
    if count and len(wins) > count:
        wins = [wins[int(j)] for j in np.linspace(0, len(wins) - 1, count).round()]
    return wins


class Windows(Dataset):
    """The fixed held-out windows of ``heldout_windows``, each an item as ``_window`` makes."""

    def __init__(self, windows, seq_len):
        self.windows, self.seq_len = windows, seq_len

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, i):
        return _window(self.windows[i], self.seq_len)


def collate(items):
    """Items -> input_ids (batch, seq_len) int64, and attention_mask (batch, seq_len) int64
    only when some item is padded."""
    batch = {"input_ids": torch.stack([it["input_ids"] for it in items])}
    mask = torch.stack([it["attention_mask"] for it in items])
    if not bool(mask.all()):  # only padded batches pay for the mask
        batch["attention_mask"] = mask
    return batch


# ---------------------------------------------------------------- training

def train_mulaw_lm(a) -> int:
    """Train, score and write RUN for the parsed options ``a`` of ``audio pretrain`` (checked
    by its ``run``); the exit code of ``run_training``.  Bad clips or a split that leaves no
    held-out window are one InputError, raised before RUN is made."""
    from ..training import Job, LMTask, heldout_bits, run_training, training_loader
    from .baselines import markov_bits

    clips = joined_clip_sets(a.train, pretrain_clips)
    if a.val is not None:
        train_clips, val_clips = clips, pretrain_clips(a.val)
        how = "--val"
    else:
        how = split_method(clips, a.split, a.val_groups)
        s = split_clips(clips, how, a.val_fraction, a.seed, a.val_groups)
        train_clips, val_clips = s["train"], s["val"]
    if not val_clips or not train_clips:
        raise InputError(f"the split leaves {len(train_clips)} training and {len(val_clips)} "
                         f"held-out clips", path=a.train[0],
                         fix="pass --val, or change --val-fraction")
    train_arrays = load_mulaw(train_clips, a.sample_rate, a.peak, a.max_seconds)
    val_arrays = load_mulaw(val_clips, a.sample_rate, a.peak, a.max_seconds)
    windows = heldout_windows(val_arrays, a.seq_len, a.val_windows)
    if not windows:
        raise InputError("the held-out clips hold no window of 2 samples or more",
                         path=a.train[0])
    val_loader = DataLoader(Windows(windows, a.seq_len), batch_size=a.batch_size,
                            collate_fn=collate)

    def job() -> Job:
        samples = a.train_samples or a.max_steps * a.batch_size
        train_ds = MulawCrops(train_arrays, a.seq_len, samples, a.seed)
        loader = training_loader(train_ds, a.batch_size, a.seed, shuffle=False,
                                 num_workers=a.workers, collate_fn=collate, drop_last=True,
                                 persistent_workers=a.workers > 0)
        extra = {"task": "audio-lm", "sample_rate": a.sample_rate, "encoding": "mulaw8",
                 "seq_len": a.seq_len, "peak": a.peak}
        config = dict(**backbone_fields(a), vocab_size=CLASSES, extra=extra)
        return Job(LMTask, config, loader, val_loader,
                   step_positions=a.batch_size * a.seq_len)

    def report(model):
        bits = heldout_bits(model, val_loader)
        markov = markov_bits(train_arrays, windows, CLASSES)
        fields = {"task": "audio-lm", "encoding": "mulaw8", "sample_rate": a.sample_rate,
                  "seq_len": a.seq_len,
                  "split": split_fields(how, train_clips, val_clips),
                  "train_audio_seconds": sum(len(x) for x in train_arrays) / a.sample_rate,
                  "val_windows": len(windows),
                  "val_samples_scored": sum(len(w) - 1 for w in windows),
                  "val_bits_per_sample": bits, "uniform_bits_per_sample": math.log2(CLASSES),
                  "markov_bits_per_sample": markov,
                  "beats_markov": bool(bits < min(markov.values()))}
        return fields, [f"held-out bits per sample ({len(windows)} windows of {len(val_clips)} "
                        f"clips): model {bits:.4f} | order-1 Markov {markov[1]:.4f} | order-0 "
                        f"{markov[0]:.4f} | uniform 8"]

    return run_training(a, job, report)
