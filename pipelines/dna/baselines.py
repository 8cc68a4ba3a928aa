"""Classic baselines for labelled DNA, fitted with scikit-learn on the model's own split.

* one-hot + logistic regression (equal-length sequences: splice junctions, promoters);
* k-mer profile + logistic regression (any length: species of origin from windows);
* a small convolutional net on one-hot sequence (``dna finetune --baseline cnn``, after
  DeepSEA and Basset: wide first filters for motifs, pooling, deeper filters for their
  arrangement), at the model's parameter count and trained as the model is trained
  (``pipelines/training/baseline_fit.py``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from ..training.baseline_fit import ClassifierNet
from .kmers import kmer_codes


def onehot_features(seqs: Sequence[np.ndarray]) -> np.ndarray:
    """(n, length) token ids (A C G T N = 0..4) -> (n, length * 5) one-hot."""
    x = np.stack([np.asarray(s) for s in seqs])
    out = np.zeros((x.shape[0], x.shape[1], 5), np.float32)
    np.put_along_axis(out, np.clip(x, 0, 4)[..., None], 1.0, axis=2)
    return out.reshape(x.shape[0], -1)


def kmer_features(seqs: Sequence[np.ndarray], k: int = 3) -> np.ndarray:
    """Token-id sequences -> (n, 4^k) k-mer frequency profiles (k-mers with N are skipped)."""
    out = np.zeros((len(seqs), 4 ** k), np.float32)
    for i, s in enumerate(seqs):
        codes, valid = kmer_codes(s, k)
        counts = np.bincount(codes[valid], minlength=4 ** k).astype(np.float32)
        out[i] = counts / max(1.0, counts.sum())
    return out


def logistic_baseline(train, val, names, kind: str = "auto", seed: int = 0, k: int = 3) -> dict:
    """Fit logistic regression on train Examples, score on val: acc, mcc, macro_f1, auroc."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from ..metrics import classification_metrics

    index = {n: i for i, n in enumerate(names)}
    ytr = np.array([index[e.label] for e in train])
    yva = np.array([index[e.label] for e in val])
    same_len = len({len(e.ids) for e in list(train) + list(val)}) == 1
    if kind == "auto":
        kind = "onehot" if same_len else "kmer"
    if kind == "onehot":
        if not same_len:
            raise ValueError("one-hot features need sequences of one length; use --baseline kmer")
        xtr, xva = onehot_features([e.ids.numpy() for e in train]), onehot_features([e.ids.numpy() for e in val])
        name = "one-hot + logistic regression"
    else:
        xtr, xva = kmer_features([e.ids.numpy() for e in train], k), kmer_features([e.ids.numpy() for e in val], k)
        scaler = StandardScaler().fit(xtr)
        xtr, xva = scaler.transform(xtr), scaler.transform(xva)
        name = f"{k}-mer profile + logistic regression"
    clf = LogisticRegression(max_iter=2000, C=1.0, random_state=seed).fit(xtr, ytr)
    m = classification_metrics(yva, clf.predict_proba(xva))
    m.pop("confusion")
    return {"name": name, **m}


class OneHotCNN(ClassifierNet):
    """input_ids (batch, length) token ids -> one-hot A C G T (N, padding and specials: all
    zero) -> three conv + batch norm + ReLU layers of ``width`` channels (kernels 19, 11 and
    7, max-pooled by 3 after the first two) -> max over positions -> dropout -> linear ->
    logits (batch, classes).  ``symbols``: the tokenizer's symbols, id order."""

    def __init__(self, num_classes: int, symbols, width: int = 64, dropout: float = 0.3):
        super().__init__()
        channel = [("ACGT".find(str(s).upper()) if str(s).upper() in "ACGT" else 4)
                   for s in symbols]
        self.register_buffer("channel", torch.tensor(channel), persistent=False)

        def layer(cin, k):
            return [nn.Conv1d(cin, width, k, padding=k // 2), nn.BatchNorm1d(width), nn.ReLU()]

        self.convs = nn.Sequential(*layer(4, 19), nn.MaxPool1d(3, ceil_mode=True),
                                   *layer(width, 11), nn.MaxPool1d(3, ceil_mode=True),
                                   *layer(width, 7))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def body(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.clamp(0, len(self.channel) - 1)
        # ids past the symbols (specials, padding) -> channel 4, which is dropped
        ch = torch.where(input_ids < len(self.channel), self.channel[ids], 4)
        x = torch.nn.functional.one_hot(ch, 5)[..., :4].transpose(1, 2).float()
        return self.head(self.drop(self.convs(x).amax(-1)))
