"""k-mer coding of token-id sequences, shared by the Markov models and the k-mer baselines."""

from __future__ import annotations

from typing import Tuple

import numpy as np


def kmer_codes(ids: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """ids (n,) with A C G T = 0..3 (anything else is not a base) -> (codes (n - k + 1,) int64,
    valid (n - k + 1,) bool): the k-mer starting at each position as a base-4 number, most
    significant digit first, and whether all its k tokens are bases.  Empty when n < k."""
    ids = np.asarray(ids)
    n = ids.shape[0]
    if n < k:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    base = (ids >= 0) & (ids < 4)
    x = np.where(base, ids, 0).astype(np.int64)
    m = n - k + 1
    codes = np.zeros(m, np.int64)
    valid = np.ones(m, bool)
    for j in range(k):
        codes = codes * 4 + x[j:m + j]
        valid &= base[j:m + j]
    return codes, valid
