"""Pretraining memory does not grow with the genome: peak RSS of `seqmamba dna pretrain` on a
60 Mb genome against a 10 Mb one, each in a fresh process (the whole-genome token arrays it
used to build cost 8 bytes a base: +400 MB here)."""

import subprocess
import sys

import numpy as np

from dna_helpers import ROOT


def synthetic_genome(path, bases: int, records: int = 2, seed: int = 0):
    """A FASTA of ``records`` records, 60-column lines, each record starting with an N run and
    with soft-masked (lowercase) stretches, written from numpy without Python-level loops."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGTacgt", np.uint8)
    with open(path, "wb") as f:
        for r in range(records):
            n = bases // records
            seq = letters[rng.integers(0, 4, n) + 4 * ((np.arange(n) // 5000) % 7 == 3)]
            seq[: n // 50] = ord("N")
            full = n // 60 * 60
            lines = np.full((full // 60, 61), ord("\n"), np.uint8)
            lines[:, :60] = seq[:full].reshape(-1, 60)
            f.write(f">chr{r + 1}\n".encode() + lines.tobytes())
            if full < n:
                f.write(seq[full:].tobytes() + b"\n")
    return path


def peak_rss_mb(argv) -> float:
    """Peak resident set of one command, in a wrapper process of its own."""
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], "
            "capture_output=True, text=True); assert p.returncode == 0, p.stderr[-2000:]; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return float(out.stdout.split()[-1])


def test_pretraining_memory_is_flat_in_genome_size(tmp_path):
    peaks = {}
    for mb in (10, 60):
        fa = synthetic_genome(tmp_path / f"g{mb}.fa", mb * 1_000_000)
        peaks[mb] = peak_rss_mb([sys.executable, "-m", "pipelines.cli", "dna", "pretrain",
                                 "--fasta", str(fa), "--out", str(tmp_path / f"run{mb}"),
                                 "--seq-len", "256", "--max-steps", "2", "--val-every", "2",
                                 "--batch-size", "2", "--d-model", "8", "--n-layer", "1",
                                 "--val-windows", "2", "--no-progress"])
    assert peaks[60] < 1.15 * peaks[10], peaks  # 6x the genome, under 15% more memory


def test_a_second_run_reads_the_saved_counts_and_a_changed_fasta_is_scanned_again(
        tmp_path, monkeypatch):
    from pipelines.dna import genome_scan
    from pipelines.dna.tokenizer import DNATokenizer
    from pipelines.dna.windows import fraction_intervals

    fa = synthetic_genome(tmp_path / "g.fa", 200_000)
    tok = DNATokenizer()

    def split():
        return (fraction_intervals([str(fa)], 0.0, 0.9), fraction_intervals([str(fa)], 0.9, 1.0))

    first = genome_scan.scan_split(*split(), tok, range(0, 4), progress=False)
    assert len(list(tmp_path.glob("g.fa.scan-*.npz"))) == 1
    scans = []
    real = genome_scan._scan
    monkeypatch.setattr(genome_scan, "_scan", lambda *a: scans.append(a) or real(*a))
    again = genome_scan.scan_split(*split(), tok, range(0, 4), progress=False)
    assert scans == []  # read back, not rescanned
    for k in range(4):
        np.testing.assert_array_equal(again.markov[k].counts, first.markov[k].counts)
    with open(fa, "ab") as f:  # the file changes: its stamp, and so the key, changes
        f.write(b">chr9\nACGTACGTAC\n")
    genome_scan.scan_split(*split(), tok, range(0, 4), progress=False)
    assert len(scans) == 1
