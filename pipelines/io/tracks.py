"""Per-position tracks along records: scores summed into bins, written as bedGraph or bigWig
(pyBigWig; what IGV and JBrowse read), to a temporary file renamed when complete."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np

from seqmamba.atomic import commit, temp_beside


def add_to_bins(bin_sum: np.ndarray, bin_cnt: np.ndarray, start: int, vals: np.ndarray,
                width: int) -> None:
    """Add per-position scores of positions start.. (n,) or (n, classes) into bins of ``width``
    positions: bin_sum (bins,) or (bins, classes), bin_cnt (bins,) counts the positions added.
    NaN scores (1-D: a language model's first base) are not counted."""
    idx = np.arange(start, start + len(vals)) // width - start // width
    first, k = start // width, int(idx[-1]) + 1
    ok = ~np.isnan(vals) if vals.ndim == 1 else np.ones(len(vals), bool)
    if vals.ndim == 1:
        bin_sum[first:first + k] += np.bincount(idx[ok], weights=vals[ok], minlength=k)
    else:
        for c in range(vals.shape[1]):
            bin_sum[first:first + k, c] += np.bincount(idx, weights=vals[:, c], minlength=k)
    bin_cnt[first:first + k] += np.bincount(idx[ok], minlength=k)


def bin_intervals(length: int, width: int, sums: np.ndarray, counts: np.ndarray) -> tuple:
    """The bins of one record that hold a score: (starts, ends, mean scores) as lists, from
    bin sums (bins,) and counts (bins,) of ``width`` positions (the last bin ends at
    ``length``)."""
    keep = np.flatnonzero(counts)
    starts = keep * width
    ends = np.minimum(starts + width, length)
    return starts.tolist(), ends.tolist(), (sums[keep] / counts[keep]).tolist()


class TrackWriter:
    """bedGraph written to a temporary file beside the target and renamed when complete."""

    def __init__(self, path: Path, task: str):
        self.tmp = temp_beside(path)
        self.f, self.path = open(self.tmp, "w"), path
        self.f.write(f'track type=bedGraph name="seqmamba {task}"\n')

    def write(self, chrom: str, length: int, width: int, sums: np.ndarray, counts: np.ndarray):
        starts, ends, vals = bin_intervals(length, width, sums, counts)
        self.f.writelines(f"{chrom}\t{s}\t{e}\t{v:.5g}\n" for s, e, v in zip(starts, ends, vals))

    def finish(self):
        self.f.close()
        commit(self.tmp, self.path)

    def abort(self):
        try:
            self.f.close()
        except OSError:  # its last flush may be what failed (a full disk)
            pass
        self.tmp.unlink(missing_ok=True)


class BigWigWriter:
    """The same bins as bigWig (pyBigWig), which IGV and JBrowse read: the header holds every
    record's size from the FASTA index, bins are added in record order, and the file is
    written to a temporary name and renamed when complete."""

    def __init__(self, path: Path, sizes: List[Tuple[str, int]]):
        import pyBigWig

        self.tmp, self.path = temp_beside(path, ".bw"), path
        self.bw = pyBigWig.open(str(self.tmp), "w")
        self.bw.addHeader(list(sizes))

    def write(self, chrom: str, length: int, width: int, sums: np.ndarray, counts: np.ndarray):
        starts, ends, vals = bin_intervals(length, width, sums, counts)
        if starts:
            self.bw.addEntries([chrom] * len(starts), starts, ends=ends, values=vals)

    def finish(self):
        self.bw.close()
        commit(self.tmp, self.path)

    def abort(self):
        try:
            self.bw.close()
        except Exception:  # a failed write may leave it unclosable
            pass
        self.tmp.unlink(missing_ok=True)


class PerClassBigWig:
    """One bigWig per class (``x.bw`` -> ``x.<label>.bw``), from bins holding every class."""

    def __init__(self, path: Path, sizes, labels):
        self.paths = [path.with_name(f"{path.stem}.{lab}{path.suffix}") for lab in labels]
        self.writers = [BigWigWriter(p, sizes) for p in self.paths]

    def write(self, chrom, length, width, sums, counts):
        for c, w in enumerate(self.writers):
            w.write(chrom, length, width, sums[:, c], counts)

    def finish(self):
        for w in self.writers:
            w.finish()

    def abort(self):
        for w in self.writers:
            w.abort()
