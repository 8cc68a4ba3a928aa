"""Pretraining memory does not grow with the genome: peak RSS of `seqmamba dna pretrain` on a
60 Mb genome against a 10 Mb one, each in a fresh process (the whole-genome token arrays it
used to build cost 8 bytes a base: +400 MB here)."""

import subprocess
import sys

import numpy as np
import pytest

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


def test_pretraining_memory_is_flat_in_genome_size_on_each_of_two_ddp_ranks(tmp_path):
    """Two CPU ranks (the second re-runs the command, so it opens the index itself and reads
    the counts the first saved): the largest rank's peak does not grow with the genome."""
    peaks = {}
    for mb in (10, 60):
        fa = synthetic_genome(tmp_path / f"g{mb}.fa", mb * 1_000_000)
        run = tmp_path / f"run{mb}"
        peaks[mb] = peak_rss_mb([sys.executable, "-m", "pipelines.cli", "dna", "pretrain",
                                 "--fasta", str(fa), "--out", str(run),
                                 "--seq-len", "256", "--max-steps", "2", "--val-every", "2",
                                 "--batch-size", "2", "--d-model", "8", "--n-layer", "1",
                                 "--val-windows", "2", "--accelerator", "cpu", "--devices", "2",
                                 "--strategy", "ddp", "--audit-dir", str(run / "audit"),
                                 "--no-progress"])
        assert (run / "audit" / "rank1.json").exists()  # the second rank did run
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


def test_all_markov_orders_in_one_pass_equal_each_order_fitted_alone():
    from pipelines.dna.markov import MarkovModel, fit_orders

    rng = np.random.default_rng()
    for _ in range(30):
        n = int(rng.integers(1, 2000))
        ids = rng.integers(0, 4, n)
        ids[rng.random(n) < rng.random() * 0.3] = rng.integers(4, 12)  # N, lowercase, specials
        top = int(rng.integers(0, 9))
        start = int(rng.integers(0, n))
        together = {k: MarkovModel(k) for k in range(top + 1)}
        fit_orders(together, ids, start=start)
        for k in range(top + 1):
            # the (k+1)-mers ending at or after `start` are those of ids[start - k:]
            alone = MarkovModel(k).fit([ids[max(0, start - k):]])
            np.testing.assert_array_equal(together[k].counts, alone.counts)


def test_the_threaded_scan_counts_as_one_whole_interval_fit(tmp_path):
    """Pieces of 1 kb read on 2 threads: every k-mer counted once, as fitting the whole
    interval at once counts it, and the first bad base in the file is the one named."""
    import torch

    from pipelines.dna import genome_scan
    from pipelines.dna.markov import MarkovModel
    from pipelines.dna.tokenizer import DNATokenizer
    from pipelines.dna.windows import POOL, fraction_intervals
    from pipelines.errors import InputError

    fa = synthetic_genome(tmp_path / "g.fa", 30_000, records=3)
    tok = DNATokenizer()
    train, val = fraction_intervals([str(fa)], 0.0, 0.8), fraction_intervals([str(fa)], 0.8, 1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(genome_scan, "PIECE", 1000)
            got = genome_scan._scan(train, val, tok, 8, False, False)
            bad = tmp_path / "bad.fa"
            text = fa.read_bytes()
            at = len(text) // 2
            bad.write_bytes(text[:at] + b"X" + text[at + 1:at + 2000] + b"Z" + text[at + 2001:])
            with pytest.raises(InputError, match="'X'"):
                genome_scan._scan(fraction_intervals([str(bad)], 0, 1), [], tok, 3, False, False)
    finally:
        torch.set_num_threads(threads)
    for k in range(9):
        whole = MarkovModel(k).fit([tok.encode(POOL.get(iv.path).fetch(iv.record, iv.start,
                                                                         iv.end)).numpy()
                                    for iv in train])
        np.testing.assert_array_equal(got.markov[k].counts, whole.counts)


def test_the_two_sided_counts_see_an_even_sample_of_the_training_pieces(tmp_path, monkeypatch):
    from pipelines.dna import genome_scan
    from pipelines.dna.tokenizer import DNATokenizer
    from pipelines.dna.two_sided import TwoSidedCounts
    from pipelines.dna.windows import POOL, fraction_intervals

    fa = synthetic_genome(tmp_path / "g.fa", 24_000, records=2)  # 2 x 12 pieces of 1 kb
    monkeypatch.setattr(genome_scan, "PIECE", 1000)
    monkeypatch.setattr(genome_scan, "TWO_SIDED_PIECES", 4)  # every 6th piece
    tok = DNATokenizer()
    train = fraction_intervals([str(fa)], 0.0, 1.0)
    got = genome_scan._scan(train, [], tok, 2, True, False).two_sided
    fasta = POOL.get(str(fa))
    want = TwoSidedCounts(6).fit([tok.encode(fasta.fetch(f"chr{r}", s, s + 1000)).numpy()
                                  for r in (1, 2) for s in (0, 6000)])
    for a, b in zip(got.counts, want.counts):
        np.testing.assert_array_equal(a, b)


def test_exclude_records_drops_matching_records_from_both_sides_of_the_split(tmp_path):
    from types import SimpleNamespace

    from pipelines.dna.pretraining import pretrain_splits

    fa = tmp_path / "g.fa"
    names = ["chr1", "chr2", "chr2_KI270_alt", "chrUn_GL0002", "chrM", "chr8"]
    fa.write_text("".join(f">{n}\n{'ACGT' * 50}\n" for n in names))
    a = SimpleNamespace(manifest=None, holdout_bed=None, val_records=["chr8", "chrM"],
                        fasta=[fa], split=None, val_fraction=0.1, seq_len=64, val_windows=1,
                        exclude_records="_alt$|_random$|chrUn_|chrM")
    train, val, _ = pretrain_splits(a)
    assert [iv.record for iv in train] == ["chr1", "chr2"]
    assert [iv.record for iv in val] == ["chr8"]
    a.val_records, a.exclude_records = None, "^chr2"  # by fraction: every record on both sides
    train, val, _ = pretrain_splits(a)
    assert {iv.record for iv in train} == {iv.record for iv in val} == {
        "chr1", "chrUn_GL0002", "chrM", "chr8"}
