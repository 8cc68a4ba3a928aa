"""Classic baselines for the audio commands, fitted on exactly the split the model sees.

* log-mel + logistic regression (``seqmamba audio finetune --baseline logmel``): 40 mel bands
  of 25 ms windows every 10 ms, log-compressed; per clip the mean and standard deviation of
  every band over the whole clip plus the band means over a fixed grid of time segments (so
  the coarse order of sounds counts too); standardised, then multinomial logistic regression.
* a small residual CNN on log-mel spectrograms (``seqmamba audio finetune --baseline cnn``),
  the keyword-spotting standard (res8 of Tang & Lin 2018, "Deep residual learning for
  small-footprint keyword spotting"), at the model's parameter count and trained as the model
  is trained (``pipelines/training/baseline_fit.py``);
* order-0 and order-1 Markov models of mu-law classes (``seqmamba audio pretrain``): the
  bits per sample a histogram and a previous-sample table spend on the held-out audio.
"""

from __future__ import annotations

import math
from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..training.baseline_fit import ClassifierNet

N_MELS = 40
TIME_GRID = 4


def logmel_features(waves: Sequence[torch.Tensor], sample_rate: int, n_mels: int = N_MELS,
                    grid: int = TIME_GRID) -> np.ndarray:
    """(samples,) float waveforms -> (n, 2 * n_mels + grid * n_mels) clip features."""
    import torchaudio.transforms as T

    win = max(16, int(round(0.025 * sample_rate)))
    hop = max(1, int(round(0.010 * sample_rate)))
    mel = T.MelSpectrogram(sample_rate=sample_rate, n_fft=win, win_length=win, hop_length=hop,
                           n_mels=n_mels, f_min=20.0, f_max=sample_rate / 2)
    out = []
    with torch.no_grad():
        for w in waves:
            s = torch.log(mel(w.float()) + 1e-6)  # (n_mels, frames)
            parts = [s.mean(-1), s.std(-1, unbiased=False)]
            if grid:  # band means over `grid` equal time segments (n_mels, grid), flattened
                parts.append(torch.nn.functional.adaptive_avg_pool1d(s[None], grid)[0].T.flatten())
            out.append(torch.cat(parts).numpy())
    return np.stack(out).astype(np.float64)


def mfcc_features(waves: Sequence[torch.Tensor], sample_rate: int, n_mfcc: int = 20) -> np.ndarray:
    """(samples,) waveforms -> (n, 4 * n_mfcc): mean and standard deviation over time of the
    MFCCs and of their deltas (25 ms windows, 10 ms hop)."""
    import torchaudio.functional as AF
    import torchaudio.transforms as T

    win = max(16, int(round(0.025 * sample_rate)))
    hop = max(1, int(round(0.010 * sample_rate)))
    mfcc = T.MFCC(sample_rate=sample_rate, n_mfcc=n_mfcc,
                  melkwargs={"n_fft": win, "win_length": win, "hop_length": hop,
                             "n_mels": N_MELS, "f_min": 20.0, "f_max": sample_rate / 2})
    out = []
    with torch.no_grad():
        for w in waves:
            m = mfcc(w.float())  # (n_mfcc, frames)
            d = AF.compute_deltas(m[None])[0]
            out.append(torch.cat([m.mean(-1), m.std(-1, unbiased=False),
                                  d.mean(-1), d.std(-1, unbiased=False)]).numpy())
    return np.stack(out).astype(np.float64)


class _Classic:
    """features -> StandardScaler -> classifier, fitted on waveforms."""

    def __init__(self, featurize, clf):
        from sklearn.preprocessing import StandardScaler

        self.featurize, self.clf, self.scaler = featurize, clf, StandardScaler()

    def fit(self, waves, labels) -> "_Classic":
        x = self.featurize(waves)
        self.clf.fit(self.scaler.fit_transform(x), np.asarray(labels))
        return self

    def predict(self, waves) -> np.ndarray:
        return self.clf.predict(self.scaler.transform(self.featurize(waves)))


BASELINES = {
    "logmel_lr": "log-mel statistics + logistic regression",
    "svm": "log-mel + MFCC statistics + RBF support-vector machine",
}


def fit_baseline(kind: str, waves, labels, sample_rate: int, seed: int = 0):
    """A classic clip classifier fitted on waveforms; ``.predict(waves)`` -> class ids.
    ``logmel_lr``: the fine-tuning report's baseline; ``svm``: a stronger one (RBF SVM on
    log-mel and MFCC statistics, C 10)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    if kind == "logmel_lr":
        return _Classic(lambda w: logmel_features(w, sample_rate),
                        LogisticRegression(max_iter=3000, random_state=seed)).fit(waves, labels)
    if kind == "svm":
        return _Classic(lambda w: np.concatenate([logmel_features(w, sample_rate),
                                                  mfcc_features(w, sample_rate)], axis=1),
                        SVC(C=10.0, gamma="scale", random_state=seed)).fit(waves, labels)
    raise ValueError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")


def logmel_baseline(train_waves, train_labels, val_waves, val_labels, num_classes: int,
                    sample_rate: int, seed: int = 0, c: float = 1.0, grid: int = TIME_GRID) -> dict:
    """Fit on the training clips, score on the held-out clips: acc, mcc, macro_f1, auroc, and
    ``predictions`` (the predicted class of each held-out clip)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from ..metrics import classification_metrics

    xtr = logmel_features(train_waves, sample_rate, grid=grid)
    xva = logmel_features(val_waves, sample_rate, grid=grid)
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(max_iter=3000, C=c, random_state=seed)
    clf.fit(scaler.transform(xtr), np.asarray(train_labels))
    probs = np.zeros((len(val_waves), num_classes))
    probs[:, clf.classes_] = clf.predict_proba(scaler.transform(xva))  # classes absent in train: 0
    m = classification_metrics(np.asarray(val_labels), probs)
    m.pop("confusion")
    return {"name": f"log-mel ({N_MELS} bands: mean+std, {TIME_GRID}-segment grid) + "
                    f"logistic regression", **m, "predictions": probs.argmax(-1)}


class LogMelResNet(ClassifierNet):
    """res8-like: log-mel (40 bands, 25 ms windows every 10 ms, each band's clip mean removed,
    as the model's ``cmn`` front end does) -> 3x3 conv of ``width`` channels -> (4, 3) average
    pool -> 3 residual blocks of two 3x3 conv + batch norm -> mean over time and frequency ->
    dropout -> linear.  input_ids (batch, samples) float waveform -> logits (batch, classes)."""

    def __init__(self, num_classes: int, sample_rate: int, width: int = 45, dropout: float = 0.1):
        import torchaudio.transforms as T

        super().__init__()
        win = max(16, int(round(0.025 * sample_rate)))
        hop = max(1, int(round(0.010 * sample_rate)))
        self.mel = T.MelSpectrogram(sample_rate=sample_rate, n_fft=win, win_length=win,
                                    hop_length=hop, n_mels=N_MELS, f_min=20.0,
                                    f_max=sample_rate / 2)
        self.stem = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.pool = nn.AvgPool2d((4, 3))
        self.blocks = nn.ModuleList(nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
            for _ in range(3))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def body(self, input_ids: torch.Tensor) -> torch.Tensor:
        s = torch.log(self.mel(input_ids.float()) + 1e-6)  # (batch, n_mels, frames)
        s = s - s.mean(-1, keepdim=True)
        h = self.pool(torch.relu(self.stem(s[:, None])))
        for block in self.blocks:
            h = torch.relu(h + block(h))
        return self.head(self.drop(h.mean((2, 3))))


def markov_bits(train: Sequence[np.ndarray], val: Sequence[np.ndarray],
                classes: int = 256, alpha: float = 0.5) -> Dict[int, float]:
    """Held-out bits per sample of order-0 and order-1 models of class ids (add-alpha).

    Scored on the positions the language model is scored on: every sample after the first of
    each held-out window (order 1 uses the sample before it, order 0 ignores it)."""
    uni = np.full(classes, alpha)
    bi = np.full((classes, classes), alpha)
    for x in train:
        x = np.asarray(x, np.int64)
        uni += np.bincount(x, minlength=classes)
        np.add.at(bi, (x[:-1], x[1:]), 1.0)
    logp0 = np.log2(uni / uni.sum())
    logp1 = np.log2(bi / bi.sum(1, keepdims=True))
    bits0 = bits1 = 0.0
    n = 0
    for x in val:
        x = np.asarray(x, np.int64)
        if len(x) < 2:
            continue
        bits0 -= float(logp0[x[1:]].sum())
        bits1 -= float(logp1[x[:-1], x[1:]].sum())
        n += len(x) - 1
    return {0: bits0 / n if n else math.nan, 1: bits1 / n if n else math.nan}
