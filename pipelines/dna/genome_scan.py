"""One streaming pass over a pretraining split before the first step: every base of the
training and held-out intervals is checked (a character that is not DNA fails now, naming the
file, record and position, not after training), and the training bases are counted for the
report's baselines (Markov orders, and the two-sided counts of a masked LM) on the way.

Memory does not grow with the genome: intervals are read in pieces of ``PIECE`` bases, and
what is kept is the counts (4^9 entries for Markov order 8; 4^12 x 4 for two-sided order 6).
Markov pieces overlap by the model's order, so every (k+1)-mer of an interval is counted once,
as a whole-interval fit would count it.  The two-sided counts see at most ``TWO_SIDED_PIECES``
evenly spaced training pieces (256 Mb: every piece of a bacterial or yeast genome, about one
in twelve of a human one), and their contexts are not carried across pieces, so the at most
12 centres per 4 Mb piece whose context straddles a piece boundary are not counted (a few per
million).  Pieces are read, checked and counted on every torch thread.

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
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from seqmamba.atomic import atomic_output

from .fasta import _stamp, cache_dir
from .markov import MarkovModel, fit_orders
from .two_sided import TwoSidedCounts, fold_bases
from .windows import POOL

PIECE = 1 << 22  # bases read at a time (4 Mb: 8 MB of int16 ids)
# the two-sided counts see at most this many training pieces (256 Mb), evenly spaced: order 6
# has 4^13 cells, so a bacterial genome does not fill them and a human one adds little but
# time (about 1 s of CPU a piece, against 0.1 s for every Markov order together)
TWO_SIDED_PIECES = 64


@dataclass
class BaselineCounts:
    """The report's baselines, fitted on the training intervals."""

    markov: Dict[int, MarkovModel] = field(default_factory=dict)
    two_sided: Optional[TwoSidedCounts] = None


def _jobs(train_iv, val_iv, overlap: int):
    """(interval, start, end, context start, counted, sampled) of every piece, held-out
    first; a training piece (counted) is read from ``overlap`` bases before its start (within
    the interval), so the k-mers ending in it are counted as a whole-interval fit counts them;
    ``sampled`` marks the evenly spaced training pieces that the two-sided counts see."""
    n_train = sum(-(-iv.length // PIECE) for iv in train_iv)
    stride = -(-n_train // TWO_SIDED_PIECES)
    for iv in val_iv:
        for s in range(iv.start, iv.end, PIECE):
            yield iv, s, min(iv.end, s + PIECE), s, False, False
    i = 0
    for iv in train_iv:
        for s in range(iv.start, iv.end, PIECE):
            yield iv, s, min(iv.end, s + PIECE), max(iv.start, s - overlap), True, i % stride == 0
            i += 1


def _piece(job, tokenizer, top: int, two_sided: bool):
    """Check one piece; for a training piece, its Markov counts of orders 0..top and, where
    sampled for them, its two-sided tallies (added by the caller to the one table)."""
    iv, s, e, lo, counted, sampled = job
    ids = tokenizer.encode_array(POOL.get(iv.path).fetch(iv.record, lo, e), record=iv.record,
                                 offset=lo, path=iv.path)
    markov = {k: MarkovModel(k) for k in range(top + 1)} if counted else {}
    if markov:
        fit_orders(markov, ids, start=s - lo)
    tally = None
    if two_sided and sampled:
        tally = TwoSidedCounts(6).tally([fold_bases(ids[s - lo:], tokenizer.acgt_ids)])
    return e - s, markov, tally


def _saved_path(train_iv, val_iv, tokenizer, top: int, two_sided: bool) -> Path:
    """Where the counts of this split are saved: a name keyed by everything they depend on."""
    files = sorted({str(iv.path) for iv in list(train_iv) + list(val_iv)})
    # "version": bump it whenever the counting changes, so saved counts of the old way are unused
    key = json.dumps({"version": 2, "piece": PIECE, "two_sided_pieces": TWO_SIDED_PIECES,
                      "markov": top, "two_sided": two_sided,
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
    from concurrent.futures import ThreadPoolExecutor

    import torch
    from tqdm.auto import tqdm

    out = BaselineCounts()
    out.markov = {k: MarkovModel(k) for k in range(top + 1)}
    if two_sided:
        out.two_sided = TwoSidedCounts(6)
    total = sum(iv.length for iv in list(train_iv) + list(val_iv))
    bar = tqdm(total=total, unit="base", unit_scale=True, desc="checking the genome",
               disable=not progress, file=sys.stderr, leave=False)
    threads = max(1, torch.get_num_threads())
    # numpy and the file reads release the GIL, so pieces are checked and counted on every
    # thread; results are taken in file order (the first bad base in the file is the one
    # named) and at most 2 per thread are held at once, so memory stays a few pieces.
    with ThreadPoolExecutor(threads) as pool:
        pending = deque()
        try:
            for job in _jobs(train_iv, val_iv, max(top, 0)):
                pending.append(pool.submit(_piece, job, tokenizer, top, two_sided))
                if len(pending) >= 2 * threads:
                    _add(out, *pending.popleft().result(), bar)
            while pending:
                _add(out, *pending.popleft().result(), bar)
        finally:
            for f in pending:
                f.cancel()
            bar.close()
    return out


def _add(out: BaselineCounts, n: int, markov, tally, bar) -> None:
    for k, model in markov.items():
        out.markov[k].counts += model.counts
    if tally is not None:
        out.two_sided.add(tally)
    bar.update(n)
