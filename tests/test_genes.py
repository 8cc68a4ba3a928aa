"""Base-level gene annotation: GFF3 -> classes, the Markov gene finder, scoring, windows, and
`dna finetune --task token` / `dna predict` on it end to end on real yeast data."""

import json

import numpy as np
import pyBigWig
import pytest
import torch

from dna_helpers import DATA, seqmamba, write
from pipelines.dna.annotation import IGNORE, read_annotation, read_features
from pipelines.dna.fasta import FastaFile
from pipelines.dna.genefinder import CodingMarkov
from pipelines.dna.genes import (GeneWindows, boundary_recall, iter_tile_probs, score_annotation,
                                 tile_starts)
from pipelines.dna.tokenizer import DNATokenizer
from pipelines.errors import InputError

YEAST = DATA / "genomes" / "Scerevisiae_chrI_chrII.fa.gz"
YEAST_GFF = DATA / "genomes" / "Scerevisiae_chrI_chrII.gff3.gz"

# chr1 (60 bases): a + strand gene with two CDS parts (bases 11-19 and 31-39, 1-based) and an
# intron between them inside its mRNA (11-39); a - strand gene 45-53 whose exon reaches 55
# (bases 54-55 are UTR).
GFF = """##gff-version 3
chr1\tt\tmRNA\t11\t39\t.\t+\t.\tID=m1
chr1\tt\tCDS\t11\t19\t.\t+\t0\tParent=m1
chr1\tt\tCDS\t31\t39\t.\t+\t0\tParent=m1
chr1\tt\tmRNA\t45\t55\t.\t-\t.\tID=m2
chr1\tt\texon\t45\t55\t.\t-\t.\tParent=m2
chr1\tt\tCDS\t45\t53\t.\t-\t0\tParent=m2
"""


def test_gff3_to_classes_and_phases(tmp_path):
    a = read_annotation(write(tmp_path / "a.gff3", GFF), {"chr1": 60, "chr2": 10})
    assert a.labels == ["intergenic", "cds_plus", "cds_minus", "intron", "utr"]
    c = a.classes["chr1"]
    want = np.zeros(60, np.int8)
    want[10:19] = 1
    want[19:30] = 3
    want[30:39] = 1
    want[44:53] = 2
    want[53:55] = 4
    np.testing.assert_array_equal(c, want)
    assert (a.classes["chr2"] == 0).all()  # not in the file: intergenic
    # codon positions read along each gene's strand; phase 0 = first base of a codon
    np.testing.assert_array_equal(a.phase["chr1"][10:19], [0, 1, 2] * 3)
    np.testing.assert_array_equal(a.phase["chr1"][44:53], [2, 1, 0] * 3)  # - strand: from 53
    assert (a.phase["chr1"][19:30] == -1).all()
    assert a.label_complement() == [0, 2, 1, 3, 4]


def test_overlapping_genes_are_an_error_or_masked(tmp_path):
    gff = write(tmp_path / "o.gff3", GFF + "chr1\tt\tCDS\t15\t24\t.\t-\t0\tID=c3\n")
    with pytest.raises(InputError, match=r"chr1:15: .*cds_plus and cds_minus.*--overlaps mask"):
        read_annotation(gff, {"chr1": 60})
    a = read_annotation(gff, {"chr1": 60}, overlaps="mask")
    c = a.classes["chr1"]
    assert (c[14:19] == IGNORE).all()  # CDS+ and CDS-
    assert (c[19:24] == IGNORE).all()  # intron of m1 and CDS- of c3
    assert a.conflicts == 10 and c[13] == 1 and c[24] == 3


@pytest.mark.parametrize("row, needle", [
    ("chr1\tt\tCDS\t50\t70\t.\t+\t0\tID=x", "line 8: CDS 50..70 runs past the end of chr1"),
    ("chrX\tt\tCDS\t5\t9\t.\t+\t0\tID=x", "line 8: record 'chrX' is not in the FASTA"),
    ("chr1\tt\tCDS\t9\t5\t.\t+\t0\tID=x", "line 8: CDS 9..5 is not a valid range"),
    ("chr1\tt\tCDS\t5\t9\t.\t.\t0\tID=x", "line 8: CDS without a strand"),
    ("chr1\tt\tCDS\t5", "line 8: 4 tab-separated columns"),
])
def test_bad_gff3_rows_name_the_line(tmp_path, row, needle):
    with pytest.raises(InputError, match=needle):
        read_annotation(write(tmp_path / "b.gff3", GFF + row + "\n"), {"chr1": 60})


def test_boundary_recall_counts_runs_hit_within_three_bases():
    truth = np.zeros(100, np.int8)
    truth[10:40] = 1
    truth[60:90] = 2
    pred = np.zeros(100, np.int8)
    pred[12:38] = 1  # both ends within 3
    pred[60:80] = 2  # start exact, end 10 bases short
    r = boundary_recall(truth, pred, coding=[1, 2])
    assert r == {"cds_runs": 2, "start": 1.0, "end": 0.5, "exact": 0.5}
    pred[60:90] = 1  # the right place on the wrong strand does not count
    assert boundary_recall(truth, pred, coding=[1, 2])["start"] == 0.5


def test_score_annotation_ignores_masked_bases():
    truth = {"r": np.array([0, 1, 1, IGNORE, 2, 3], np.int8)}
    pred = {"r": np.array([0, 1, 2, 1, 2, 0], np.int8)}
    m = score_annotation(truth, pred, ["intergenic", "cds_plus", "cds_minus", "intron"])
    assert m["bases"] == 5 and m["acc"] == 0.6
    assert m["f1"] == {"intergenic": 0.6667, "cds_plus": 0.6667, "cds_minus": 0.6667,
                       "intron": 0.0}


@pytest.fixture(scope="module")
def yeast():
    fa = FastaFile(YEAST)
    lengths = {r.name: r.length for r in fa.records}
    ann = read_annotation(YEAST_GFF, lengths, overlaps="mask")
    tok = DNATokenizer()
    return fa, ann, tok


def test_codon_markov_gene_finder_on_held_out_yeast_chromosome(yeast):
    """The classic baseline must find genes on chrI after fitting chrII (it is the bar the
    model is compared with, so a broken one would flatter the model)."""
    fa, ann, tok = yeast
    gf = CodingMarkov(ann.labels).fit({"chrII": tok.encode(fa.fetch("chrII")).numpy()}, ann)
    pred = gf.predict(tok.encode(fa.fetch("chrI")).numpy())
    m = score_annotation({"chrI": ann.classes["chrI"]}, {"chrI": pred}, ann.labels)
    truth = ann.classes["chrI"]
    majority = np.bincount(truth[truth >= 0]).max() / (truth >= 0).sum()
    assert m["acc"] > majority + 0.15
    assert m["f1"]["cds_plus"] > 0.7 and m["f1"]["cds_minus"] > 0.7
    # frames matter: a model without codon positions scores coding DNA worse
    flat = CodingMarkov(ann.labels)
    flat.coding[:] = gf.coding.sum(0)  # one table for all three codon positions
    flat.counts = gf.counts
    m_flat = score_annotation({"chrI": truth},
                              {"chrI": flat.predict(tok.encode(fa.fetch("chrI")).numpy())},
                              ann.labels)
    assert m["macro_f1"] > m_flat["macro_f1"]


def test_gene_windows_reverse_complement_swaps_strand_labels(yeast):
    fa, ann, tok = yeast
    plain = GeneWindows(str(YEAST), ann, ["chrII"], 500, tok, 8, seed=3)
    flipped = GeneWindows(str(YEAST), ann, ["chrII"], 500, tok, 8, seed=3, rc_prob=1.0)
    swap = torch.tensor([0, 2, 1, 3])
    seen = set()
    for i in range(8):
        a, b = plain[i], flipped[i]
        assert torch.equal(b["input_ids"], tok.reverse_complement(a["input_ids"]))
        la = a["labels"].flip(0)
        ok = la >= 0
        assert torch.equal(b["labels"][ok], swap[la[ok]])
        seen |= set(a["labels"].tolist())
    assert {1, 2} <= seen  # the windows did hold genes on both strands


def test_tiled_probabilities_do_not_depend_on_the_block(yeast):
    from seqmamba import MambaConfig, MambaForTokenClassification

    torch.manual_seed(0)
    model = MambaForTokenClassification(MambaConfig(d_model=16, n_layer=1, d_state=4,
                                                    vocab_size=16, num_labels=4,
                                                    bidirectional="add")).eval()
    ids = torch.randint(0, 4, (1000,))
    read = lambda s, e: ids[s:e]  # noqa: E731
    whole = np.concatenate([p for _, p in iter_tile_probs(model, read, 1000, 128)])
    blocks = list(iter_tile_probs(model, read, 1000, 128, block=97))
    assert [s for s, _ in blocks] == list(range(0, 1000, 97))
    np.testing.assert_allclose(np.concatenate([p for _, p in blocks]), whole, atol=1e-5)
    np.testing.assert_allclose(whole.sum(1), 1.0, atol=1e-5)
    # a base in the middle of one window only: that window's own prediction
    with torch.no_grad():
        first = model(ids[None, :128]).logits[0].softmax(-1).numpy()
    np.testing.assert_allclose(whole[:5], first[:5], atol=1e-5)  # only window 0 covers 0..63
    assert tile_starts(1000, 128)[-1] == 1000 - 128


def test_finetune_token_and_predict_tracks_and_segments(tmp_path):
    """The command line on real yeast: train on chrII, score chrI against the annotation and
    the baseline, then predict a slice with per-class bigWigs and GFF3/BED segments."""
    run = tmp_path / "run"
    code, out, err = seqmamba(
        "dna", "finetune", "--task", "token", "--fasta", YEAST, "--annotation", YEAST_GFF,
        "--overlaps", "mask", "--val-records", "chrI", "--seq-len", "512", "--d-model", "16",
        "--n-layer", "1", "--d-state", "4", "--bidirectional", "add", "--rc-equivariant",
        "--max-steps", "4", "--batch-size", "2", "--val-every", "4", "--val-windows", "2",
        "--eval-seq-len", "1024", "--class-weights", "balanced", "--out", run, "--no-progress")
    assert code == 0, err
    assert err.strip() == "", err  # no library noise
    rep = json.loads((run / "report.json").read_text())
    assert rep["task"] == "dna-token" and rep["split"]["val_records"] == ["chrI"]
    assert rep["model"]["bases"] == rep["baseline"]["bases"] == int((read_annotation(
        YEAST_GFF, {r.name: r.length for r in FastaFile(YEAST).records},
        overlaps="mask").classes["chrI"] >= 0).sum())
    assert rep["baseline"]["f1"]["cds_plus"] > 0.7
    assert (run / "gene_track.png").stat().st_size > 5000
    assert "macro-F1" in out and "Markov-5" in out

    # a 3 kb slice of chrI as its own FASTA
    seq = FastaFile(YEAST).fetch("chrI", 30000, 33000)
    fa = write(tmp_path / "slice.fa", ">s1\n" + seq + "\n")
    table, bw, gff, bed = (tmp_path / n for n in ("p.tsv", "t.bw", "seg.gff3", "seg.bed"))
    code, out, err = seqmamba("dna", "predict", fa, "--model", run, "--out", table,
                              "--track", bw, "--segments", gff, "--window", "1024",
                              "--no-progress")
    assert code == 0, err
    row = dict(zip(*[line.split("\t") for line in table.read_text().splitlines()[:2]]))
    fracs = {k[5:]: float(v) for k, v in row.items() if k.startswith("frac_")}
    assert set(fracs) == set(rep["labels"]) and abs(sum(fracs.values()) - 1) < 1e-4
    per_class = [pyBigWig.open(str(tmp_path / f"t.{c}.bw")) for c in rep["labels"]]
    vals = np.array([b.values("s1", 0, 3000) for b in per_class])
    assert per_class[0].chroms() == {"s1": 3000}
    np.testing.assert_allclose(vals.sum(0), 1.0, atol=1e-4)
    # segments: a GFF3 our own reader accepts, covering exactly the non-intergenic bases
    feats = read_features(gff, {"s1": 3000})
    called = np.zeros(3000, bool)
    for f in feats:
        called[f.start:f.end] = True
    argmax = vals.argmax(0)
    np.testing.assert_array_equal(called, argmax != 0)
    assert int(row["cds_segments"]) == sum(f.type == "CDS" for f in feats)
    code, _, err = seqmamba("dna", "predict", fa, "--model", run, "--out", tmp_path / "q.tsv",
                            "--segments", bed, "--window", "1024", "--no-progress")
    assert code == 0, err
    rows = [r.split("\t") for r in bed.read_text().splitlines()]
    assert len(rows) == len(feats) and all(r[3] in rep["labels"] for r in rows)


def test_token_task_bad_input_is_one_line(tmp_path):
    gff = write(tmp_path / "g.gff3", "chrI\tt\tCDS\t100\t999999\t.\t+\t0\tID=x\n")
    code, out, err = seqmamba("dna", "finetune", "--task", "token", "--fasta", YEAST,
                              "--annotation", gff, "--val-records", "chrI", "--out",
                              tmp_path / "r")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "line 1: CDS 100..999999 runs past the end of chrI" in err
    assert not (tmp_path / "r").exists()
    code, _, err = seqmamba("dna", "finetune", "--task", "token", "--fasta", YEAST,
                            "--annotation", YEAST_GFF, "--val-records", "chrI", "--out",
                            tmp_path / "r")
    assert code == 2 and "--overlaps mask" in err and len(err.strip().splitlines()) == 1
    code, _, err = seqmamba("dna", "finetune", "--task", "token", "--fasta", YEAST,
                            "--annotation", YEAST_GFF, "--overlaps", "mask", "--val-records",
                            "chrIII", "--out", tmp_path / "r")
    assert code == 2 and "--val-records: no record 'chrIII'" in err
