"""The classic baseline for base-level gene annotation: codon-position-aware Markov models.

The GeneMark idea (Borodovsky & McIninch 1993): coding DNA is a 3-periodic (inhomogeneous)
Markov chain, one order-k transition table per codon position, while non-coding DNA is one
homogeneous chain.  Here every class of the annotation gets its models, fitted on the training
records:

* ``cds_plus`` / ``cds_minus``: three order-k tables, by codon position, fitted on coding
  bases read along their gene's strand (a - strand gene is read on the reverse complement);
* ``intergenic``, ``intron``, ``utr``: one order-k table each, fitted on both strands (they
  have no strand).

A held-out base is scored by the log-likelihood of a window of ``window`` bases around it under
each hypothesis: each non-coding class, and each coding class in each of its 3 frames (the
frame that fits best wins).  The base gets the class of the best hypothesis, as GeneMark's
sliding-window posterior does (equal priors).
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from .annotation import Annotation
from .kmers import kmer_codes

_COMP = np.array([3, 2, 1, 0, 4], np.int64)  # A C G T N -> T G C A N


def _rc(ids: np.ndarray) -> np.ndarray:
    return _COMP[np.minimum(ids, 4)][::-1]


class CodingMarkov:
    def __init__(self, labels: Sequence[str], order: int = 5, window: int = 96,
                 alpha: float = 1.0):
        self.labels, self.order, self.window, self.alpha = list(labels), order, window, alpha
        self.noncoding = [c for c in self.labels if not c.startswith("cds_")]
        n = 4 ** (order + 1)
        self.counts: Dict[str, np.ndarray] = {c: np.zeros(n) for c in self.noncoding}
        self.coding = np.zeros((3, n))  # by codon position of the predicted base

    def _codes(self, ids):
        """codes (n,) of the (order+1)-mer ending at each base, and which are all-ACGT (n,)."""
        codes, valid = kmer_codes(ids, self.order + 1)
        pad = self.order  # bases without a full context: not scored
        return (np.concatenate([np.zeros(pad, np.int64), codes]),
                np.concatenate([np.zeros(pad, bool), valid]))

    def fit(self, records: Dict[str, np.ndarray], ann: Annotation) -> "CodingMarkov":
        """records: {name: token ids (A C G T N = 0..4)}."""
        cds = {"cds_plus": ann.labels.index("cds_plus"), "cds_minus": ann.labels.index("cds_minus")}
        for name, ids in records.items():
            cls, ph = ann.classes[name], ann.phase[name]
            for strand_ids, strand_cls, strand_ph, coding in (
                    (ids, cls, ph, cds["cds_plus"]),
                    (_rc(ids), cls[::-1], ph[::-1], cds["cds_minus"])):
                codes, valid = self._codes(strand_ids)
                for c in self.noncoding:
                    sel = valid & (strand_cls == ann.labels.index(c))
                    self.counts[c] += np.bincount(codes[sel], minlength=self.coding.shape[1])
                for p in range(3):
                    sel = valid & (strand_cls == coding) & (strand_ph == p)
                    self.coding[p] += np.bincount(codes[sel], minlength=self.coding.shape[1])
        return self

    def _logp(self, counts: np.ndarray) -> np.ndarray:
        t = counts.reshape(-1, 4) + self.alpha
        return np.log(t / t.sum(1, keepdims=True)).reshape(-1)

    def _per_base(self, ids: np.ndarray) -> List[np.ndarray]:
        """Per-base log-likelihoods (n,) under each hypothesis, in ``hypotheses()`` order."""
        n = len(ids)
        out = []
        codes, valid = self._codes(ids)
        for c in self.noncoding:
            out.append(np.where(valid, self._logp(self.counts[c])[codes], 0.0))
        tables = [self._logp(self.coding[p]) for p in range(3)]
        pos = np.arange(n)
        for codes_s, valid_s, flip in ((codes, valid, False), (*self._codes(_rc(ids)), True)):
            for frame in range(3):
                p = (pos - frame) % 3  # codon position of each base along this strand
                lp = np.zeros(n)
                for q in range(3):
                    sel = valid_s & (p == q)
                    lp[sel] = tables[q][codes_s[sel]]
                out.append(lp[::-1].copy() if flip else lp)
        return out

    def hypotheses(self) -> List[str]:
        return self.noncoding + ["cds_plus"] * 3 + ["cds_minus"] * 3

    def predict(self, ids: np.ndarray) -> np.ndarray:
        """token ids (n,) -> class ids (n,) of ``labels``: the best-scoring hypothesis over a
        window centred on each base."""
        n, h = len(ids), self.window // 2
        scores = np.empty((len(self.hypotheses()), n))
        for k, lp in enumerate(self._per_base(ids)):
            c = np.concatenate([[0.0], np.cumsum(lp)])
            lo = np.clip(np.arange(n) - h, 0, n)
            hi = np.clip(np.arange(n) + h + 1, 0, n)
            scores[k] = c[hi] - c[lo]
        best = scores.argmax(0)
        lut = np.array([self.labels.index(c) for c in self.hypotheses()], np.int8)
        return lut[best]
