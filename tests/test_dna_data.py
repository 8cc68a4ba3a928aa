"""DNA data layer on the bundled genomes: FASTA access, tokenizer, windows, splits, baselines."""

import gzip
import shutil

import numpy as np
import pytest
import torch

from pipelines.dna.fasta import FastaFile
from pipelines.dna.manifest import load_split
from pipelines.dna.markov import MarkovModel
from pipelines.dna.tokenizer import DNATokenizer
from pipelines.dna.windows import (GenomeWindows, Interval, fraction_intervals, read_bed,
                                   record_intervals, subtract)
from pipelines.errors import InputError

from dna_helpers import DATA, write

ECOLI = DATA / "genomes" / "Ecoli_K12_MG1655.fa.gz"
VCHO = DATA / "genomes" / "Vcholerae_N16961_AE003852-3.fa.gz"


def test_bgzip_fasta_random_access_matches_plain(tmp_path):
    fa = FastaFile(VCHO)
    assert [r.length for r in fa.records] == [2961149, 1072315]  # SOURCES.md: 4,033,464 bp
    plain = tmp_path / "v.fa"
    with gzip.open(VCHO, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    pf = FastaFile(plain)
    name = fa.records[1].name
    for start in (0, 12345, 1072315 - 70):
        assert fa.fetch(name, start, start + 70) == pf.fetch(name, start, start + 70)


def test_index_goes_to_cache_when_directory_is_read_only(tmp_path, monkeypatch):
    src = tmp_path / "ro" / "g.fa"
    write(src, ">r1\nACGTACGTAC\nACG\n")
    monkeypatch.setenv("SEQMAMBA_CACHE", str(tmp_path / "cache"))
    real_access = __import__("os").access
    monkeypatch.setattr("pipelines.dna.fasta.os.access",
                        lambda p, mode: False if str(p) == str(src.parent) else real_access(p, mode))
    fa = FastaFile(src)
    assert fa.fetch("r1", 8, 13) == "ACACG"
    assert not (src.parent / "g.fa.fai").exists()
    assert list((tmp_path / "cache" / "fai").glob("g.fa.*.fai"))


@pytest.mark.parametrize("content, needle", [
    (b"ACGTACGT\n", "no '>' header"),
    (b">r1\nACGT\n>r2\n>r3\nACGT\n", "empty record"),
    (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4, "binary"),
    (b">r1\r\nACGT\r\n", "CRLF"),
    (b">dup\nACGT\n>dup\nACGG\n", "duplicate record name"),
    (b"", "empty file"),
])
def test_bad_fasta_errors_name_file_and_problem(tmp_path, content, needle):
    p = tmp_path / "bad.fa"
    p.write_bytes(content)
    with pytest.raises(InputError) as e:
        FastaFile(p)
    msg = str(e.value)
    assert needle in msg and "bad.fa" in msg and "\n" not in msg
    if needle == "empty record":
        assert "'r2'" in msg


def test_plain_gzip_is_refused_with_the_fix(tmp_path):
    p = tmp_path / "x.fa.gz"
    with gzip.open(p, "wb") as f:
        f.write(b">r1\nACGT\n")
    with pytest.raises(InputError, match="bgzip"):
        FastaFile(p)


def test_tokenizer_maps_iupac_case_and_reports_bad_characters():
    tok = DNATokenizer()
    assert tok.encode("ACGTNacgtRyk").tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 4, 4]
    cased = DNATokenizer(keep_case=True)
    assert cased.encode("Aa").tolist() == [0, 5] and cased.vocab_size == 17
    assert tok.decode(tok.encode("GATTACA")) == "GATTACA"
    ids = tok.encode("AACGTN")
    assert tok.decode(tok.reverse_complement(ids)) == "NACGTT"
    comp = tok.complement_map
    assert all(comp[comp[i]] == i for i in range(tok.vocab_size))
    with pytest.raises(InputError, match=r"record 'chr7'.*'X' at position 1,003"):
        tok.encode("ACX", record="chr7", offset=1000)
    with pytest.raises(InputError, match="carriage return"):
        tok.encode("AC\rGT", record="r")


def test_windows_are_deterministic_per_seed_and_epoch_and_respect_splits():
    tok = DNATokenizer()
    train = fraction_intervals([ECOLI], 0.0, 0.9)
    ds = GenomeWindows(train, 256, tok, 50, seed=3, rc_prob=0.5)
    again = GenomeWindows(train, 256, tok, 50, seed=3, rc_prob=0.5)
    assert all(torch.equal(ds[i]["input_ids"], again[i]["input_ids"]) for i in range(10))
    other_seed = GenomeWindows(train, 256, tok, 50, seed=4, rc_prob=0.5)
    assert not all(torch.equal(ds[i]["input_ids"], other_seed[i]["input_ids"]) for i in range(10))
    first = [ds[i]["start"] for i in range(10)]
    ds.set_epoch(1)
    assert [ds[i]["start"] for i in range(10)] != first
    limit = train[0].end
    items = [ds[i] for i in range(50)]
    assert all(it["start"] + 256 <= limit for it in items)
    assert {it["strand"] for it in items} == {"+", "-"}
    # a reverse-strand window is the reverse complement of the genome there
    it = next(x for x in items if x["strand"] == "-")
    fwd = tok.encode(FastaFile(ECOLI).fetch(it["record"], it["start"], it["start"] + 256))
    assert torch.equal(it["input_ids"], tok.reverse_complement(fwd))


def test_windows_skip_n_rich_regions(tmp_path):
    p = tmp_path / "n.fa"
    write(p, ">r\n" + "N" * 900 + "ACGT" * 25 + "\n")
    ds = GenomeWindows(record_intervals([p]), 50, DNATokenizer(), 20, max_n_frac=0.1)
    assert all(ds[i]["start"] >= 900 - 5 for i in range(20))
    ds = GenomeWindows(record_intervals([p]), 200, DNATokenizer(), 5, max_n_frac=0.1)
    with pytest.raises(InputError, match="more than 10% N"):
        ds[0]


def test_bed_holdout_and_subtract(tmp_path):
    bed = tmp_path / "hold.bed"
    write(bed, "K-12-MG1655\t1000\t2000\nK-12-MG1655\t5000\t6000\n")
    held = read_bed(bed, [ECOLI])
    rest = subtract(record_intervals([ECOLI]), held)
    assert [(iv.start, iv.end) for iv in rest][:2] == [(0, 1000), (2000, 5000)]
    assert sum(iv.length for iv in rest) + 2000 == 4639675
    write(bed, "chrZ\t1\t5\n")
    with pytest.raises(InputError, match="line 1: chromosome 'chrZ'"):
        read_bed(bed, [ECOLI])


def test_manifest_split_checks_checksums(tmp_path):
    train, val, files = load_split("genomes.yaml", "species-80-20")
    assert len(files) == 5 and len({iv.path for iv in val}) == 5
    for iv in val:  # held-out = last 20% of every record
        assert iv.end == FastaFile(iv.path).length(iv.record)
    m = tmp_path / "m.yaml"
    copy = tmp_path / "g.fa"
    write(copy, ">r\nACGT\n")
    write(m, "files:\n  g: {path: g.fa, sha256: " + "0" * 64 + "}\n"
             "splits:\n  s: {train: [{file: g}], val: [{file: g}]}\n")
    with pytest.raises(InputError, match="sha256"):
        load_split(m, "s")


def test_markov_baseline_on_ecoli_split_matches_published_figure():
    """Issue 4 quotes order 6 at 1.934 bits per base for E. coli 90/10; order 0 at 2.000."""
    tok = DNATokenizer()
    fa = FastaFile(ECOLI)
    tr = fraction_intervals([ECOLI], 0.0, 0.9)[0]
    va = fraction_intervals([ECOLI], 0.9, 1.0)[0]
    train = tok.encode(fa.fetch(tr.record, tr.start, tr.end)).numpy()
    test = tok.encode(fa.fetch(va.record, va.start, va.end)).numpy()
    assert abs(MarkovModel(6).fit([train]).bits_per_base([test]) - 1.934) < 0.002
    assert abs(MarkovModel(0).fit([train]).bits_per_base([test]) - 2.000) < 0.002


def test_markov_learns_a_deterministic_sequence():
    seq = np.array([0, 1, 2, 3] * 200)
    assert MarkovModel(1).fit([seq]).bits_per_base([seq]) < 0.05
    assert MarkovModel(0).fit([seq]).bits_per_base([seq]) > 1.99


def test_fetch_outside_a_record_is_an_error():
    fa = FastaFile(ECOLI)
    with pytest.raises(InputError, match="outside the record"):
        fa.fetch("K-12-MG1655", 4639670, 4639680)
    assert Interval("a", "r", 5, 9).length == 4
