"""Masked-frame pretraining of a waveform model (``seqmamba audio pretrain --objective masked``).

The model a classifier fine-tunes (front end + bidirectional backbone, reading raw samples in
frames) learns from unlabelled audio by filling in what is hidden, as HuBERT's first iteration
does: every frame of every clip gets a target, the k-means cluster of its log-mel spectrum and
that spectrum's deltas (the clusters fitted on the training clips); in training, spans of
frames are silenced in the input and the model predicts the cluster of each silenced frame from
the frames around it.  Predicting discrete clusters, not the spectrum itself, keeps the loss
from being spent on detail that does not tell sounds apart (HuBERT, Hsu et al. 2021), and the
targets come from a fixed log-mel, not from the learned front end, which could otherwise make
its own targets trivial.

``seqmamba audio finetune --init RUN`` then starts a classifier from the front end and backbone
(the per-frame head is dropped).
"""

from __future__ import annotations

import functools
import math
from typing import List, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError

IGNORE = -100  # a frame that is not scored (not masked, or padding)
VOICED_DB = 40.0  # frames within this of the clip's loudest set the band means
MAX_MELS = 40
KMEANS_FRAMES = 100_000  # frames the clusters are fitted on (drawn from all training clips)


# ---------------------------------------------------------------- targets

@functools.lru_cache(maxsize=4)
def _mel_spectrogram(sample_rate: int, frame: int):
    """The log-mel transform of frame_features, built once per rate and frame (its mel
    filterbank is the same for every clip)."""
    import torchaudio.transforms as T

    mels = min(MAX_MELS, max(4, frame // 4))  # no empty mel band at small frames
    return T.MelSpectrogram(sample_rate=sample_rate, n_fft=2 * frame, hop_length=frame,
                            center=False, n_mels=mels, f_min=20.0, f_max=sample_rate / 2)


def frame_features(wave: torch.Tensor, sample_rate: int, frame: int) -> np.ndarray:
    """Waveform (samples,) -> (ceil(samples / frame), 2 * mels) float32 features of the model's
    frames: the log-mel spectrum of a Hann window of two frames centred on each frame, less
    the clip's mean over its voiced frames (as the ``cmn`` front end), and its deltas."""
    import torchaudio.functional as AF

    n = max(1, -(-wave.shape[-1] // frame))
    mel = _mel_spectrogram(sample_rate, frame)
    # window t starts half a frame before frame t, so it is centred on it
    x = torch.nn.functional.pad(wave.float().reshape(-1), (frame // 2, 2 * frame))
    with torch.no_grad():
        s = torch.log(mel(x) + 1e-6)[:, :n]  # (mels, n)
        level = torch.logsumexp(s, 0)
        voiced = level >= level.max() - VOICED_DB * math.log(10) / 10
        s = s - s[:, voiced].mean(1, keepdim=True)
        d = AF.compute_deltas(s[None])[0]
    return torch.cat([s, d]).T.numpy().astype(np.float32)


class FrameClusters:
    """k-means over standardised frame features (scikit-learn's MiniBatchKMeans)."""

    def __init__(self, features: Sequence[np.ndarray], k: int, seed: int):
        from sklearn.cluster import MiniBatchKMeans

        x = np.concatenate(features)
        rng = np.random.default_rng(seed)
        if len(x) > KMEANS_FRAMES:
            x = x[rng.choice(len(x), KMEANS_FRAMES, replace=False)]
        if len(x) < k:
            raise InputError(f"--clusters {k} is more than the {len(x)} frames of the training "
                             "clips", fix="lower --clusters, or give more audio")
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        self.kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3,
                                      batch_size=4096).fit((x - self.mean) / self.std)

    def assign(self, features: np.ndarray) -> np.ndarray:
        """(frames, dims) -> (frames,) int64 cluster ids."""
        return self.kmeans.predict((features - self.mean) / self.std).astype(np.int64)


# ---------------------------------------------------------------- masked crops

def span_mask(frames: int, prob: float, span: int, rng: np.random.Generator) -> np.ndarray:
    """(frames,) bool: ``round(prob * frames / span)`` (at least one) spans of ``span``
    frames from distinct random starts, as wav2vec 2.0 masks; spans may overlap, so a little
    under ``prob`` of the frames end up masked."""
    m = np.zeros(frames, bool)
    starts = rng.choice(frames, size=min(frames, max(1, round(prob * frames / span))),
                        replace=False)
    for s in starts:
        m[s:s + span] = True
    return m


class MaskedFrames(Dataset):
    """Crops of ``seq_len`` samples (a multiple of ``frame``) with spans of frames silenced.

    Item i: {"input_ids": (seq_len,) float32 samples, masked frames zeroed and a short clip
    zero-padded; "labels": (seq_len / frame,) the target cluster of each masked frame, -100
    elsewhere}.  In training (``samples`` items an epoch) the clip is drawn in proportion to
    its length and the crop and masks are a pure function of (seed, epoch, i); in evaluation
    item i is clip i from its start with masks fixed by (seed, i), so every evaluation and
    every baseline scores the same frames."""

    def __init__(self, waves: Sequence[torch.Tensor], targets: Sequence[np.ndarray],
                 seq_len: int, frame: int, prob: float, span: int, seed: int,
                 samples: int = 0):
        self.waves, self.targets = list(waves), list(targets)
        self.seq_len, self.frame, self.prob, self.span = seq_len, frame, prob, span
        self.seed, self.samples, self.epoch = seed, samples, 0
        lengths = np.array([len(w) for w in self.waves], np.float64)
        self.p = lengths / lengths.sum()

    def set_epoch(self, e):
        self.epoch = e

    def __len__(self):
        return self.samples or len(self.waves)

    def __getitem__(self, i):
        if self.samples:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            c = int(rng.choice(len(self.waves), p=self.p))
            frames = len(self.targets[c])
            start = int(rng.integers(0, max(0, frames - self.seq_len // self.frame) + 1))
        else:
            rng = np.random.default_rng([self.seed, 1 << 20, i])
            c, start = i, 0
        n = self.seq_len // self.frame
        target = self.targets[c][start:start + n]
        wave = self.waves[c][start * self.frame:(start + n) * self.frame]
        x = torch.zeros(self.seq_len)
        x[:len(wave)] = wave
        mask = span_mask(len(target), self.prob, self.span, rng)
        labels = torch.full((n,), IGNORE, dtype=torch.long)
        labels[:len(target)][torch.from_numpy(mask)] = torch.from_numpy(target[mask])
        keep = torch.ones(n)
        keep[:len(target)][torch.from_numpy(mask)] = 0.0
        x = (x.view(n, self.frame) * keep[:, None]).view(-1)
        return {"input_ids": x, "labels": labels}


def collate(items):
    return {k: torch.stack([it[k] for it in items]) for k in ("input_ids", "labels")}


# ---------------------------------------------------------------- scoring

def masked_accuracy(model, loader) -> float:
    """Share of the masked frames of ``loader`` whose cluster the model's argmax names."""
    right = total = 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for b in loader:
            logits = model(b["input_ids"].to(device)).logits
            ok = b["labels"] != IGNORE
            right += int((logits.argmax(-1).cpu()[ok] == b["labels"][ok]).sum())
            total += int(ok.sum())
    return right / max(1, total)


def baseline_accuracies(dataset: MaskedFrames, train_targets: Sequence[np.ndarray]) -> dict:
    """What needs no model, on the same masked frames: the commonest training cluster, and
    the true cluster of the nearest frame that is not masked (sounds last several frames)."""
    counts = np.bincount(np.concatenate(train_targets), minlength=1)
    majority = int(counts.argmax())
    right_major = right_near = total = 0
    for i in range(len(dataset)):
        labels = dataset[i]["labels"].numpy()
        target = dataset.targets[i][:len(labels)]
        masked = labels[:len(target)] != IGNORE
        seen = np.flatnonzero(~masked)
        for t in np.flatnonzero(masked):
            total += 1
            right_major += int(target[t] == majority)
            if len(seen):
                right_near += int(target[seen[np.abs(seen - t).argmin()]] == target[t])
    return {"majority": right_major / max(1, total), "nearest_unmasked": right_near / max(1, total),
            "masked_frames": total}


def clip_features(waves: Sequence[torch.Tensor], sample_rate: int, frame: int) -> List[np.ndarray]:
    """frame_features of every clip."""
    return [frame_features(w, sample_rate, frame) for w in waves]
