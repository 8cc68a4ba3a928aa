"""One streaming pass over a pretraining split before the first step: every base of the
training and held-out intervals is checked (a character that is not DNA fails now, naming the
file, record and position, not after training), and the training bases are counted for the
report's baselines (Markov orders, and the two-sided counts of a masked LM) on the way.

Memory does not grow with the genome: intervals are read in pieces of ``PIECE`` bases, and
what is kept is the counts (4^9 entries for Markov order 8; 4^12 x 4 for two-sided order 6).
Markov pieces overlap by the model's order, so every (k+1)-mer of an interval is counted once,
as a whole-interval fit would count it; two-sided contexts are not carried across pieces, so
the at most 12 centres per 4 Mb piece whose context straddles a piece boundary are not
counted (a few per million).

A second run on the same split starts at once: the counts are saved after the pass, beside the
first FASTA (or in the cache directory where its folder is read-only), under a key made of each
FASTA's index stamp (size, mtime, a hash of both ends: a changed file is scanned again), the
intervals, the tokenizer and the baselines asked for.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from seqmamba.atomic import atomic_output

from .fasta import _stamp, cache_dir
from .markov import MarkovModel
from .two_sided import TwoSidedCounts, fold_bases
from .windows import POOL

PIECE = 1 << 22  # bases read at a time (4 Mb: about 40 MB of int64 ids)


@dataclass
class BaselineCounts:
    """The report's baselines, fitted on the training intervals."""

    markov: Dict[int, MarkovModel] = field(default_factory=dict)
    two_sided: Optional[TwoSidedCounts] = None


def _pieces(iv, tokenizer):
    """ids (n,) int64 of an interval, PIECE bases at a time, checked as encoded."""
    fa = POOL.get(iv.path)
    for s in range(iv.start, iv.end, PIECE):
        e = min(iv.end, s + PIECE)
        yield tokenizer.encode(fa.fetch(iv.record, s, e), record=iv.record, offset=s,
                                  path=iv.path).numpy()


def _saved_path(train_iv, val_iv, tokenizer, top: int, two_sided: bool) -> Path:
    """Where the counts of this split are saved: a name keyed by everything they depend on."""
    files = sorted({str(iv.path) for iv in list(train_iv) + list(val_iv)})
    # "version": bump it whenever the counting changes, so saved counts of the old way are unused
    key = json.dumps({"version": 1, "piece": PIECE, "markov": top, "two_sided": two_sided,
                      "tokenizer": tokenizer.to_dict(),
                      "files": [[str(Path(f).resolve()), _stamp(Path(f))] for f in files],
                      "train": [[iv.path, iv.record, iv.start, iv.end] for iv in train_iv],
                      "val": [[iv.path, iv.record, iv.start, iv.end] for iv in val_iv]},
                     sort_keys=True, default=str)
    name = f"{Path(files[0]).name}.scan-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    first = Path(files[0]).resolve().parent
    return (first if os.access(first, os.W_OK) else cache_dir() / "scans") / name


def _load(path: Path, top: int, two_sided: bool) -> Optional[BaselineCounts]:
    try:
        with np.load(path) as z:
            out = BaselineCounts({k: MarkovModel(k) for k in range(top + 1)})
            for k, m in out.markov.items():
                m.counts = z[f"markov_{k}"].astype(np.float64)
            if two_sided:
                out.two_sided = TwoSidedCounts(6)
                out.two_sided.counts = [z[f"two_sided_{j}"] for j in range(7)]
            return out
    except (OSError, ValueError, KeyError):  # absent, cut short or of another layout: rescan
        return None


def _save(path: Path, counts: BaselineCounts) -> None:
    arrays = {f"markov_{k}": m.counts for k, m in counts.markov.items()}
    if counts.two_sided is not None:
        arrays.update({f"two_sided_{j}": t for j, t in enumerate(counts.two_sided.counts)})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    except OSError:  # a read-only cache only costs the next run a rescan
        pass


def scan_split(train_iv, val_iv, tokenizer, markov_orders=(), two_sided: bool = False,
               progress: bool = True) -> BaselineCounts:
    """Check every base of ``train_iv`` and ``val_iv`` and count the training bases for Markov
    models of orders 0..max(markov_orders) and, with ``two_sided``, the two-sided counts;
    or read what an earlier run of the same split saved.  A progress bar over the bases
    checked goes to stderr."""
    top = max(markov_orders, default=-1)
    saved = _saved_path(train_iv, val_iv, tokenizer, top, two_sided)
    out = _load(saved, top, two_sided)
    if out is None:
        out = _scan(train_iv, val_iv, tokenizer, top, two_sided, progress)
        _save(saved, out)
    return out


def _scan(train_iv, val_iv, tokenizer, top: int, two_sided: bool, progress: bool):
    from tqdm.auto import tqdm

    out = BaselineCounts()
    out.markov = {k: MarkovModel(k) for k in range(top + 1)}
    if two_sided:
        out.two_sided = TwoSidedCounts(6)
    total = sum(iv.length for iv in list(train_iv) + list(val_iv))
    bar = tqdm(total=total, unit="base", unit_scale=True, desc="checking the genome",
               disable=not progress, file=sys.stderr, leave=False)
    try:
        for iv in val_iv:
            for ids in _pieces(iv, tokenizer):
                bar.update(len(ids))
        for iv in train_iv:
            tail = np.zeros(0, np.int64)  # the interval's last `top` ids before this piece
            for ids in _pieces(iv, tokenizer):
                for k, model in out.markov.items():  # tail[-k:] is all of a shorter tail
                    model.fit([np.concatenate([tail[-k:] if k else tail[:0], ids])])
                if out.two_sided is not None:
                    out.two_sided.fit([fold_bases(ids, tokenizer.acgt_ids)])
                if top > 0:
                    tail = np.concatenate([tail, ids])[-top:]
                bar.update(len(ids))
    finally:
        bar.close()
    return out
