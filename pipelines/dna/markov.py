"""k-th order Markov models of DNA: the classic baseline for bits per base.

An order-k model predicts base t from bases t-k..t-1 with add-alpha smoothed counts of
(k+1)-mers from the training sequence.  Positions whose context or target holds anything
but A C G T are skipped, in training and in evaluation.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from .kmers import kmer_codes


class MarkovModel:
    def __init__(self, order: int, alpha: float = 1.0):
        if order < 0:
            raise ValueError(f"Markov order must be >= 0, got {order}")
        self.order, self.alpha = order, alpha
        self.counts = np.zeros(4 ** (order + 1), np.float64)

    def fit(self, seqs: Iterable[np.ndarray]) -> "MarkovModel":
        """seqs: token-id arrays (A C G T = 0..3)."""
        for s in seqs:
            codes, valid = kmer_codes(s, self.order + 1)  # context and target
            self.counts += np.bincount(codes[valid], minlength=self.counts.size)
        return self

    def bits(self, seqs: Iterable[np.ndarray]):
        """(total bits, number of predicted bases) over seqs."""
        table = self.counts.reshape(-1, 4) + self.alpha
        logp = np.log2(table / table.sum(1, keepdims=True)).reshape(-1)
        total, n = 0.0, 0
        for s in seqs:
            codes, valid = kmer_codes(s, self.order + 1)  # context and target
            total -= float(logp[codes[valid]].sum())
            n += int(valid.sum())
        return total, n

    def bits_per_base(self, seqs: Iterable[np.ndarray]) -> float:
        total, n = self.bits(list(seqs))
        return total / n if n else math.nan
