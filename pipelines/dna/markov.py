"""k-th order Markov models of DNA: the classic baseline for bits per base.

An order-k model predicts base t from bases t-k..t-1 with add-alpha smoothed counts of
(k+1)-mers from the training sequence.  Positions whose context or target holds anything
but A C G T are skipped, in training and in evaluation.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable

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


def fit_orders(models: Dict[int, MarkovModel], ids: np.ndarray, start: int = 0) -> None:
    """Add to every model of ``models`` (order -> model) the (order+1)-mers of ``ids`` (n,)
    that end at a position >= ``start`` (ids before ``start`` are context only: a piece of a
    longer sequence that overlaps the previous piece); the same counts as fitting each model
    alone on ids, in one pass instead of one per order.

    Every position is coded once, as the base-4 number of the top-order k-mer ending there;
    a lower order's k-mer is its last digits.  Positions that end a whole top-order k-mer (all
    but a few near N runs) are counted once in a top-order histogram, which each lower order
    sums over its leading digits; the few others are counted directly.
    """
    ids = np.asarray(ids)
    k = max(models) + 1
    base = (ids >= 0) & (ids < 4)
    n = ids.shape[0]
    at = np.arange(n, dtype=np.int32)  # a piece of a genome: int32 halves the memory
    run = at - np.maximum.accumulate(np.where(base, -1, at))  # bases ending at each position
    run[:start] = 0
    x = np.concatenate([np.zeros(k - 1, np.int32), np.where(base, ids, 0).astype(np.int32)])
    code = np.zeros(n, np.int32)
    for j in range(k):  # the k-mer ending at i, most significant digit first
        code = code * 4 + x[j:j + n]
    whole = np.bincount(code[run >= k], minlength=4 ** k)
    short = np.flatnonzero((run > 0) & (run < k))
    for order, model in models.items():
        m = 4 ** (order + 1)
        counts = whole.reshape(-1, m).sum(0)
        few = short[run[short] > order]
        model.counts += counts + np.bincount(code[few] % m, minlength=m)
