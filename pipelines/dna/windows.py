"""Genome windows: fixed-length pieces of reference genomes for pretraining and evaluation.

A split is a list of :class:`Interval` s (file, record, start, end); windows lie wholly inside
one interval.  Window ``i`` of epoch ``e`` is a pure function of (seed, e, i): the data set is
deterministic for a seed, and under DDP, where each rank's sampler draws different indices,
each rank reads different windows.  Intervals are chosen in proportion to the number of
windows they hold, so records contribute in proportion to their length.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
from torch.utils.data import Dataset

from ..errors import InputError
from .fasta import FastaFile
from .tokenizer import DNATokenizer

_MAX_TRIES = 64


@dataclass(frozen=True)
class Interval:
    path: str
    record: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


class FastaPool:
    """Opened FASTA files by path, reopened in each process (DataLoader workers fork)."""

    def __init__(self):
        self._pid, self._files = None, {}

    def get(self, path) -> FastaFile:
        if self._pid != os.getpid():
            self._pid, self._files = os.getpid(), {}
        key = str(path)
        if key not in self._files:
            self._files[key] = FastaFile(key)
        return self._files[key]

    def __getstate__(self):
        return {"_pid": None, "_files": {}}


POOL = FastaPool()


def fraction_intervals(paths: Iterable, lo: float, hi: float) -> List[Interval]:
    """[lo, hi) of every record of every file (e.g. 0.0-0.9 train, 0.9-1.0 held out)."""
    if not 0 <= lo < hi <= 1:
        raise InputError(f"split fraction [{lo}, {hi}) must satisfy 0 <= lo < hi <= 1")
    out = []
    for p in paths:
        for r in POOL.get(p).records:
            s, e = int(round(lo * r.length)), int(round(hi * r.length))
            if e > s:
                out.append(Interval(str(p), r.name, s, e))
    return out


def record_intervals(paths: Iterable, records: Optional[Sequence[str]] = None,
                     exclude: Sequence[str] = ()) -> List[Interval]:
    """Whole records (all, or those named), minus the excluded names."""
    out = []
    for p in paths:
        for r in POOL.get(p).records:
            if (records is None or r.name in records) and r.name not in exclude:
                out.append(Interval(str(p), r.name, 0, r.length))
    if records:
        found = {iv.record for iv in out}
        missing = [r for r in records if r not in found and r not in exclude]
        if missing:
            raise InputError(f"split names records not in the FASTA files: {missing[:5]}")
    return out


def read_bed(path, paths: Sequence) -> List[Interval]:
    """BED intervals (chrom, start, end; 0-based half-open) resolved against the FASTA files."""
    where: Dict[str, str] = {}
    for p in paths:
        for r in POOL.get(p).records:
            where.setdefault(r.name, str(p))
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            cols = line.rstrip("\n").split("\t")
            try:
                chrom, start, end = cols[0], int(cols[1]), int(cols[2])
            except (IndexError, ValueError):
                raise InputError(f"line {n}: expected 'chrom<TAB>start<TAB>end'", path=path) from None
            if chrom not in where:
                raise InputError(f"line {n}: chromosome {chrom!r} is in none of the FASTA files",
                                 path=path)
            length = POOL.get(where[chrom]).length(chrom)
            if not 0 <= start < end <= length:
                raise InputError(f"line {n}: interval {start}-{end} is outside {chrom} "
                                 f"(length {length})", path=path)
            out.append(Interval(where[chrom], chrom, start, end))
    return out


def subtract(intervals: List[Interval], holes: List[Interval]) -> List[Interval]:
    """intervals minus holes (e.g. a genome minus held-out BED regions)."""
    out = []
    for iv in intervals:
        cuts = sorted((h.start, h.end) for h in holes if h.record == iv.record and h.path == iv.path
                      and h.end > iv.start and h.start < iv.end)
        pos = iv.start
        for s, e in cuts:
            if s > pos:
                out.append(Interval(iv.path, iv.record, pos, s))
            pos = max(pos, e)
        if pos < iv.end:
            out.append(Interval(iv.path, iv.record, pos, iv.end))
    return out


class GenomeWindows(Dataset):
    """Windows of ``seq_len`` tokens drawn from ``intervals``.

    item: {"input_ids": (seq_len,) int64, "label": int (if ``label``), "record", "start",
    "strand"}.  Windows whose fraction of N exceeds ``max_n_frac`` are redrawn; with
    ``rc_prob`` a window is replaced by its reverse complement (augmentation).  With
    ``fixed=True`` (evaluation) a window does not change with the epoch.
    """

    def __init__(self, intervals: List[Interval], seq_len: int, tokenizer: DNATokenizer,
                 samples: int, seed: int = 0, max_n_frac: float = 0.1, rc_prob: float = 0.0,
                 fixed: bool = False, label: Optional[int] = None):
        if seq_len < 1:
            raise InputError(f"--seq-len must be positive, got {seq_len}")
        self.intervals = [iv for iv in intervals if iv.length >= seq_len]
        if not self.intervals:
            longest = max((iv.length for iv in intervals), default=0)
            raise InputError(f"no interval of the split holds a window of {seq_len:,} bases "
                             f"(longest: {longest:,})", fix="use a shorter --seq-len")
        counts = np.array([iv.length - seq_len + 1 for iv in self.intervals], dtype=np.float64)
        self.weights = counts / counts.sum()
        self.seq_len, self.tokenizer, self.samples = seq_len, tokenizer, samples
        self.seed, self.max_n_frac, self.rc_prob = seed, max_n_frac, rc_prob
        self.fixed, self.label, self.epoch = fixed, label, 0
        self.n_id = tokenizer.symbols.index("N")
        self.n_low = tokenizer.symbols.index("n") if tokenizer.keep_case else self.n_id

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples

    def window(self, i: int):
        """(interval, start, reverse) of window i: a pure function of (seed, epoch, i)."""
        rng = np.random.default_rng([self.seed, 0 if self.fixed else self.epoch, i])
        for _ in range(_MAX_TRIES):
            iv = self.intervals[rng.choice(len(self.intervals), p=self.weights)]
            start = iv.start + int(rng.integers(0, iv.length - self.seq_len + 1))
            reverse = bool(rng.random() < self.rc_prob)
            seq = POOL.get(iv.path).fetch(iv.record, start, start + self.seq_len)
            ids = self.tokenizer.encode(seq, record=iv.record, offset=start, path=iv.path)
            n_frac = float(((ids == self.n_id) | (ids == self.n_low)).float().mean())
            if n_frac <= self.max_n_frac:
                return iv, start, reverse, ids
        raise InputError(f"{_MAX_TRIES} windows in a row had more than {self.max_n_frac:.0%} N",
                         fix="raise --max-n-frac or exclude assembly gaps from the split")

    def __getitem__(self, i: int) -> dict:
        iv, start, reverse, ids = self.window(i)
        if reverse:
            ids = self.tokenizer.reverse_complement(ids)
        item = {"input_ids": ids, "record": iv.record, "start": start,
                "strand": "-" if reverse else "+", "path": Path(iv.path).name}
        if self.label is not None:
            item["label"] = self.label
        return item


def record_names(value) -> list:
    """``--val-records`` as a list of record names: several values, a comma-separated string
    (a recipe's ``chr21,chr22``), or both."""
    values = [value] if isinstance(value, str) else list(value or [])
    return [r.strip() for v in values for r in str(v).split(",") if r.strip()]
