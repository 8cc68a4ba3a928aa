"""Two-sided count models of DNA: the baseline for a masked language model's bits per base.

An order-k model predicts the base at position i from the k bases on its left and the k bases
on its right, with Krichevsky-Trofimov (add-1/2) smoothed counts from the training sequences.
It sits beside a masked LM's held-out masked-position bits per base as ``markov.py`` sits beside
a causal LM's.  A context is unusable when it runs off the window, holds anything but A C G T,
or holds another masked position (the masked LM cannot see those either); unusable contexts,
and contexts never seen in training, back off to order k-1, down to order 0 (base frequencies).

Token ids: A C G T = 0..3; anything else is not a base.  With ``DNATokenizer(keep_case=True)``
fold lowercase first (ids 5..8 -> 0..3), e.g. ``np.where((ids >= 5) & (ids <= 8), ids - 5, ids)``.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence, Tuple

import numpy as np

MAX_ORDER = 6   # 4^13 bins at order 6 (int32: 270 MB); order 7 would be 16 times more
_NOT_BASE = 4   # every non-base token is folded to this value in the flat arrays below


def fold_bases(ids: np.ndarray, acgt_ids) -> np.ndarray:
    """Token ids (n,) of any tokenizer -> (n,) int64 this module reads: the ids ``acgt_ids``
    (A C G T, then a c g t where case is kept) -> 0..3, everything else -> 4."""
    out = np.full(np.shape(ids), 4, dtype=np.int64)
    for i, tid in enumerate(acgt_ids):
        out[ids == tid] = i % 4
    return out


def _fold(ids, name: str) -> np.ndarray:
    """ids (n,) token ids -> (n,) uint8: bases 0..3 kept, everything else _NOT_BASE."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of token ids, got shape {ids.shape}")
    return np.where((ids >= 0) & (ids < 4), ids, _NOT_BASE).astype(np.uint8)


def _distinct(cells: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """cells (p,) in [0, size) -> (distinct cells, how often each): a histogram of ``size``
    bins where that is small, a sort where it is not (order 6: 4^13 bins, 16 times a piece)."""
    if size <= 1 << 22:
        hist = np.bincount(cells, minlength=size)
        u = np.flatnonzero(hist)
        return u, hist[u]
    cells = np.sort(cells)
    first = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
    return cells[first].astype(np.int64), np.diff(np.r_[first, cells.size])


def _flatten(seqs: Sequence[np.ndarray], name: str) -> Tuple[np.ndarray, np.ndarray]:
    """seqs: m arrays (n_j,) -> (flat (N,) uint8, starts (m,) int64).

    The sequences are laid end to end, each followed by one non-base and the whole padded by
    MAX_ORDER non-bases on both sides: a context that would cross a sequence's edge then holds a
    non-base, so one vectorised pass over ``flat`` treats every sequence separately."""
    pad = np.full(MAX_ORDER, _NOT_BASE, np.uint8)
    sep = pad[:1]
    parts = [pad]
    for j, s in enumerate(seqs):
        parts += [_fold(s, f"{name}[{j}]"), sep]
    parts.append(pad)
    lengths = np.array([p.size for p in parts[1:-1:2]], np.int64)
    starts = MAX_ORDER + np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)
    return np.concatenate(parts), starts


def _context(x: np.ndarray, idx: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """x (N,) uint8 (_NOT_BASE where not visible), idx (m,) centres with MAX_ORDER tokens either
    side -> (codes (m,) int64, ok (m,) bool): bases idx-k..idx-1 then idx+1..idx+k as one base-4
    number, most significant first, and whether all 2k of them are visible bases."""
    codes = np.zeros(idx.size, np.int64)
    ok = np.ones(idx.size, bool)
    for off in [*range(-k, 0), *range(1, k + 1)]:   # loops over offsets, never over positions
        g = x[idx + off]
        ok &= g < 4
        codes <<= 2
        codes += g & 3   # a non-base gives a meaningless digit, but ok is False there
    return codes, ok


class TwoSidedCounts:
    """Counts for every order 0..k (back-off from order k needs all of them).

    ``counts[j]``: (4 ** (2 j), 4) int32, rows the order-j context code (see ``_context``),
    columns the centre base.  int32 keeps order 6 at 270 MB; it holds up to 2^31 positions."""

    def __init__(self, k: int):
        if not 0 <= k <= MAX_ORDER:
            raise ValueError(f"two-sided order must be in 0..{MAX_ORDER}, got {k}")
        self.k = k
        self.counts = [np.zeros((4 ** (2 * j), 4), np.int32) for j in range(k + 1)]

    def fit(self, seqs: Iterable[np.ndarray]) -> "TwoSidedCounts":
        """seqs: token-id arrays (n_j,).  Counts, for each order j, every position whose centre
        and whole order-j context (inside the same sequence) are bases; adds to earlier fits."""
        return self.add(self.tally(seqs))

    def tally(self, seqs: Iterable[np.ndarray]) -> list:
        """What ``fit`` would add, without adding it: per order j, (cells (u,) int64, counts
        (u,) int64), the distinct flat cells (context code * 4 + centre) of ``counts[j]`` and
        how often each was seen.  It touches no state, so the pieces of a genome are tallied
        on several threads and added to the one table in turn.

        Each centre's top-order context is coded once; an order-j context is its middle 2j
        digits, usable where the runs of bases either side of the centre are both >= j."""
        x, _ = _flatten(list(seqs), "seqs")
        k, m = self.k, MAX_ORDER
        n = x.size - 2 * m
        code = np.zeros(n, np.int32)   # at most 4^12 (int32 holds 4^13 cells too)
        for off in [*range(-k, 0), *range(1, k + 1)]:   # slices of x, never a Python loop
            code <<= 2
            code |= x[m + off:m + off + n] & 3   # a non-base digit is never used (see below)
        base = x < 4
        at = np.arange(x.size)
        run_left = at - np.maximum.accumulate(np.where(base, -1, at))   # bases ending at i
        rev = at - np.maximum.accumulate(np.where(base[::-1], -1, at))
        run_right = rev[::-1]   # bases starting at i
        idx = np.flatnonzero(base[m:m + n]) + m   # the pads keep every idx +- m inside x
        left, right = run_left[idx - 1], run_right[idx + 1]
        code, centre = code[idx - m], x[idx].astype(np.int32)
        out = []
        for j in range(k + 1):
            ok = (left >= j) & (right >= j)
            cells = (code[ok] >> 2 * (k - j) & (4 ** (2 * j) - 1)) * 4 + centre[ok]
            out.append(_distinct(cells, 4 ** (2 * j + 1)))
        return out

    def add(self, tallies: list) -> "TwoSidedCounts":
        """Add what ``tally`` returned (for this order or higher) to the counts."""
        for table, (cells, counts) in zip(self.counts, tallies):
            table.reshape(-1)[cells] += counts.astype(np.int32)
        return self

    def log2_probs(self, windows: Sequence[np.ndarray], masked: Sequence[np.ndarray],
                   k: int | None = None) -> Tuple[np.ndarray, np.ndarray]:
        """windows: m arrays (n_j,) of true token ids; masked: m arrays (p_j,) of distinct
        positions in window j that are scored, and hidden from every context; k: the highest
        order used (default self.k).

        -> (log2 p (P,) float64, order used (P,) int8) for the P masked positions whose true
        token is a base, window by window, in the order given."""
        k = self.k if k is None else k
        if not 0 <= k <= self.k:
            raise ValueError(f"order k must be in 0..{self.k} (the order fitted), got {k}")
        if len(windows) != len(masked):
            raise ValueError(f"{len(windows)} windows but {len(masked)} masked-position arrays")
        x, starts = _flatten(windows, "windows")
        pos = []
        for j, (w, m) in enumerate(zip(windows, masked)):
            m = np.asarray(m, np.int64).reshape(-1)
            if m.size and (m.min() < 0 or m.max() >= len(w)):
                raise ValueError(f"masked[{j}] holds a position outside window {j} (length {len(w)})")
            pos.append(starts[j] + m)
        pos = np.concatenate(pos) if pos else np.zeros(0, np.int64)
        idx = pos[x[pos] < 4]   # a non-base centre is not scored
        truth = x[idx].astype(np.int64)
        hidden = x.copy()
        hidden[pos] = _NOT_BASE   # masked positions are invisible to every context
        logp = np.empty(idx.size)
        used = np.zeros(idx.size, np.int8)
        for j in range(k + 1):   # ascending: the highest usable, seen order is written last
            codes, ok = _context(hidden, idx, j)
            rows = self.counts[j][codes].astype(np.float64)   # (P, 4)
            n = rows.sum(1)
            take = ok & (n > 0) if j else np.ones(idx.size, bool)   # order 0 always applies
            p = (rows[np.arange(idx.size), truth] + 0.5) / (n + 2.0)   # KT over 4 bases
            logp[take] = np.log2(p[take])
            used[take] = j
        return logp, used


def two_sided_bits(train_seqs: Iterable[np.ndarray], windows: Sequence[np.ndarray],
                   masked: Sequence[np.ndarray], orders: Iterable[int] = range(0, 7)
                   ) -> dict[int, float]:
    """{k: mean bits per base over every masked position whose true token is a base (0..3)}.

    train_seqs: token-id arrays; windows, masked: as ``TwoSidedCounts.log2_probs``.  The counts
    are fitted once, to the highest order asked for, and every order reuses them."""
    orders = sorted(set(orders))
    if not orders:
        return {}
    model = TwoSidedCounts(orders[-1]).fit(train_seqs)
    out = {}
    for k in orders:
        logp, _ = model.log2_probs(windows, masked, k)
        out[k] = float(-logp.mean()) if logp.size else math.nan
    return out
