"""Class probabilities over time along recordings of any length (``audio predict --track``).

A recording is read in blocks (soundfile), mixed to mono and resampled to the model's rate
block by block, and cut into windows of ``window`` seconds every ``hop`` seconds; the windows
go through the classifier in batches.  Memory holds one block and one window's worth of
samples, whatever the recording's length (an hour at 16 kHz is 57.6M samples).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterator, List, Tuple

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from seqmamba.atomic import atomic_output

from ..errors import InputError
from .crop import center_crop
from .io import audio_info, normalize_peak

BLOCK_SECONDS = 30.0  # read this much of the file at a time
CONTEXT = 512  # raw samples of context on each side of a block for the resampling filter


def _mono_blocks(path: Path, size: int) -> Iterator[np.ndarray]:
    with sf.SoundFile(str(path)) as f:
        while True:
            data = f.read(size, dtype="float32", always_2d=True)
            if data.shape[0]:
                x = data.mean(axis=1)
                if not np.isfinite(x).all():
                    raise InputError("NaN or infinite samples", path=path, fix="fix or drop the file")
                yield x
            if data.shape[0] < size:
                return


def stream_mono(path: Path, rate: int, block_seconds: float = BLOCK_SECONDS
                ) -> Iterator[torch.Tensor]:
    """The recording as consecutive float32 pieces (samples,) at ``rate``, mono.

    Resampling runs block by block, each block with ``CONTEXT`` raw samples of its neighbours
    on both sides (so the filter sees across the joins) and is output one block late, once its
    right-hand context has been read.  Blocks and context are whole multiples of the
    rate ratio's period, so every block's output starts on an exact output sample."""
    src = int(audio_info(path, None).sample_rate)
    if src == rate:
        yield from (torch.from_numpy(x) for x in
                    _mono_blocks(path, max(1, int(block_seconds * src))))
        return
    g = math.gcd(src, rate)
    unit, up = src // g, rate // g  # `unit` input samples make `up` output samples
    context = unit * -(-CONTEXT // unit)
    size = unit * max(1, int(block_seconds * src) // unit)
    left = np.zeros(0, np.float32)
    cur = None
    for nxt in _prefetch(_mono_blocks(path, size)):
        if cur is not None:
            yield _resampled(left, cur, nxt[:context] if nxt is not None else None, src, rate,
                             unit, up)
            left = np.concatenate([left, cur])[-context:]
        cur = nxt


def _prefetch(blocks):
    """The blocks, then None (the end)."""
    for b in blocks:
        yield b
    yield None


def _resampled(left, cur, right, src, rate, unit, up) -> torch.Tensor:
    seg = np.concatenate([left, cur, right if right is not None else np.zeros(0, np.float32)])
    y = AF.resample(torch.from_numpy(seg)[None], src, rate)[0]
    a = len(left) * up // unit
    if right is None:  # the last block: everything to the end
        return y[a:]
    return y[a:a + len(cur) * up // unit]


def windows(pieces: Iterator[torch.Tensor], win: int, hop: int
            ) -> Iterator[Tuple[int, torch.Tensor]]:
    """(start sample, window (win,)) every ``hop`` samples along the concatenated pieces; a
    recording shorter than one window gives one window, centred in silence."""
    buf = torch.zeros(0)
    offset = 0  # sample index of buf[0]
    nxt = 0
    total = 0
    for p in pieces:
        buf = torch.cat([buf, p])
        total += p.shape[0]
        while nxt + win <= offset + buf.shape[0]:
            yield nxt, buf[nxt - offset:nxt - offset + win]
            nxt += hop
        drop = min(nxt - offset, buf.shape[0])
        buf, offset = buf[drop:], offset + drop
    if total < win:
        yield 0, center_crop(buf, win)


@torch.no_grad()
def write_track(predictor, files: List[Path], out: Path, window: float, hop: float,
                batch: int = 32) -> int:
    """One row per window and file: file, start and end (seconds), the label and the
    probability of every class; written atomically.  Returns the number of windows."""
    sr = predictor.sample_rate
    win, step = max(1, int(round(window * sr))), max(1, int(round(hop * sr)))
    labels = predictor.labels
    n = 0
    with atomic_output(out) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "start", "end", "label"] + [f"p_{x}" for x in labels])

        def flush(rows):
            x = torch.stack([r[1] for r in rows])
            if predictor.peak is not None:
                x = torch.stack([normalize_peak(v, predictor.peak) for v in x])
            probs = predictor.classify(x)
            for (path, _, start), p in zip(rows, probs):
                w.writerow([str(path), f"{start / sr:.3f}", f"{(start + win) / sr:.3f}",
                            labels[int(p.argmax())]] + [f"{v:.5g}" for v in p.tolist()])

        for path in files:
            pending = []
            for start, x in windows(stream_mono(path, sr), win, step):
                pending.append((path, x, start))
                if len(pending) == batch:
                    flush(pending)
                    n += len(pending)
                    pending = []
            if pending:
                flush(pending)
                n += len(pending)
    return n
