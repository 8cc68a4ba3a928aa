"""The `seqmamba dna` commands end to end on tiny settings, and their handling of bad input."""

import csv
import gzip
import json

import numpy as np
import pytest

import seqmamba as seqmamba_lib

from dna_helpers import DATA, seqmamba, tiny_classifier, tiny_lm, write
from pipelines.dna.models import resolve_model_dir
from pipelines.io.tables import model_provenance

HPYLORI = DATA / "genomes" / "Hpylori_G27_NC_011333.1.fa.gz"
PROMOTERS = DATA / "labelled" / "uci_ecoli_promoters.tsv"

BAD_FASTA = {
    "no_header.fa": (b"ACGTACGTACGT\n", "no '>' header"),
    "empty_record.fa": (b">only\n", "empty record"),
    "binary.fa": (bytes(range(256)) * 8, "binary"),
    "crlf.fa": (b">r1\r\nACGTACGT\r\n", "CRLF"),
    "dups.fa": (b">a\nACGT\n>a\nACGT\n", "duplicate record name"),
    "unknown_char.fa": (b">r1\nACGTQACGT\n", "unexpected character 'Q'"),
}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return tiny_classifier(tmp_path_factory.mktemp("clf"))


def rows(path):
    delim = "," if str(path).endswith(".csv") else "\t"
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter=delim))


@pytest.mark.parametrize("name", sorted(BAD_FASTA) + ["plain.fa.gz"])
def test_predict_bad_fasta_one_line_error_exit_2_no_output(tmp_path, classifier, name):
    path = tmp_path / name
    if name == "plain.fa.gz":
        with gzip.open(path, "wb") as f:
            f.write(b">r\nACGT\n")
        needle = "bgzip"
    else:
        content, needle = BAD_FASTA[name]
        path.write_bytes(content)
    out = tmp_path / "out" / "pred.tsv"
    rc, stdout, stderr = seqmamba("dna", "predict", "--model", classifier, path, "--out", out,
                                  "--no-progress")
    assert rc == 2, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("seqmamba:")]
    assert lines and needle in lines[0] and name in lines[0]
    assert "Traceback" not in stderr
    assert not out.exists() and not (out.parent / "pred.tsv.partial").exists()


def test_pretrain_bad_fasta_leaves_no_run(tmp_path):
    bad = write(tmp_path / "bad.fa", "no header here\n")
    rc, _, stderr = seqmamba("dna", "pretrain", "--fasta", bad, "--out", tmp_path / "run",
                             "--max-steps", "2")
    assert rc == 2 and "no '>' header" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "run").exists()


def test_predict_keeps_good_records_when_one_is_bad(tmp_path, classifier):
    fa = write(tmp_path / "mixed.fa", ">good1\nACGTACGTTTGACA\n>bad\nACGTZZ\n>good2\nGGGCCCAAAT\n")
    out = tmp_path / "p.tsv"
    rc, _, stderr = seqmamba("dna", "predict", "--model", classifier, fa, PROMOTERS,
                             "--out", out, "--no-progress")
    assert rc == 2
    assert "record 'bad'" in stderr and "'Z' at position 5" in stderr
    got = rows(out)
    assert [r["record"] for r in got[:2]] == ["good1", "good2"] and len(got) == 2 + 106
    for r in got:
        assert abs(float(r["p_neg"]) + float(r["p_pos"]) - 1) < 1e-4
        assert r["label"] == ("pos" if float(r["p_pos"]) > float(r["p_neg"]) else "neg")
    errors = rows(tmp_path / "p.tsv.errors.tsv")
    assert [e["record"] for e in errors] == ["bad"]


def test_chunked_prediction_equals_whole_record_and_tracks_cover_it(tmp_path, classifier):
    fa = write(tmp_path / "g.fa", ">chrA\n" + "ACGTTGCAAGGCTTAC" * 40 + "\n>chrB\nGATTACAGATTACA\n")
    outs = {}
    for chunk in (7, 100000):
        out = tmp_path / f"p{chunk}.csv"
        rc, _, err = seqmamba("dna", "predict", "--model", classifier, fa, "--out", out,
                              "--chunk-size", chunk, "--track", tmp_path / f"t{chunk}.bedgraph",
                              "--track-bin", 50, "--embed", tmp_path / f"e{chunk}.npz",
                              "--no-progress")
        assert rc == 0, err
        outs[chunk] = rows(out)
    for a, b in zip(outs[7], outs[100000]):
        assert abs(float(a["p_pos"]) - float(b["p_pos"])) < 1e-4
    track = (tmp_path / "t7.bedgraph").read_text().splitlines()
    assert track[0].startswith("track type=bedGraph")
    a_bins = [line.split("\t") for line in track[1:] if line.startswith("chrA")]
    assert a_bins[0][1:3] == ["0", "50"] and a_bins[-1][2] == str(16 * 40)
    t_big = (tmp_path / "t100000.bedgraph").read_text().splitlines()
    assert len(t_big) == len(track)
    for x, y in zip(track[1:], t_big[1:]):
        assert abs(float(x.split("\t")[3]) - float(y.split("\t")[3])) < 1e-3
    emb = np.load(tmp_path / "e7.npz")
    assert emb["embeddings"].shape == (2, 32) and list(emb["ids"]) == ["g.fa:chrA", "g.fa:chrB"]
    assert np.allclose(emb["embeddings"], np.load(tmp_path / "e100000.npz")["embeddings"], atol=1e-4)


def test_predict_resumes_from_partial_output(tmp_path, classifier):
    fa = write(tmp_path / "g.fa", ">r1\nACGTACGTAC\n>r2\nTTTTGGGGCC\n>r3\nGATTACA\n")
    full = tmp_path / "full.tsv"
    assert seqmamba("dna", "predict", "--model", classifier, fa, "--out", full, "--no-progress")[0] == 0
    done = rows(full)
    out = tmp_path / "p.tsv"
    header = "\t".join(done[0].keys())
    first = "\t".join(done[0].values())
    # a run that stopped after one record; mark its row so we can tell it was kept, not redone
    write(tmp_path / "p.tsv.partial", header + "\n" + first.replace(done[0]["label"], "KEPT") + "\n")
    # what that run recorded about itself: another model's partial is refused, never merged
    meta = tmp_path / "p.tsv.partial.json"
    own = model_provenance(resolve_model_dir(classifier), max_length=None)
    meta.write_text(json.dumps({**own, "weights_sha256": "0" * 64}))
    rc, _, err = seqmamba("dna", "predict", "--model", classifier, fa, "--out", out, "--no-progress")
    assert rc == 2 and "another model or other options (weights_sha256)" in err
    assert "Traceback" not in err and not out.exists()
    meta.write_text(json.dumps(own))
    rc, stdout, _ = seqmamba("dna", "predict", "--model", classifier, fa, "--out", out, "--no-progress")
    assert rc == 0
    got = rows(out)
    assert [r["record"] for r in got] == ["r1", "r2", "r3"] and got[0]["label"] == "KEPT"
    assert got[1:] == done[1:]
    assert not (tmp_path / "p.tsv.partial").exists() and not meta.exists()


def test_pretrain_resume_finetune_predict_generate(tmp_path):
    run = tmp_path / "pre"
    common = ["--seq-len", 64, "--batch-size", 4, "--d-model", 32, "--n-layer", 2,
              "--val-windows", 8, "--markov-orders", 0, 3, "--no-progress", "--warmup-steps", 2]
    rc, out, err = seqmamba("dna", "pretrain", "--fasta", HPYLORI, "--out", run,
                            "--max-steps", 6, "--val-every", 3, *common)
    assert rc == 0, err
    report = json.loads((run / "report.json").read_text())
    assert report["steps"] == 6 and set(report["markov_bits_per_base"]) == {"0", "3"}
    assert 1.5 < report["markov_bits_per_base"]["0"] < 2.1 and report["val_bits_per_base"] > 0
    assert (run / "final" / "model.safetensors").exists() and (run / "loss_curve.png").exists()
    assert "bits per base" in out
    # a second start on the same directory is refused; --resume continues the run
    rc, _, err = seqmamba("dna", "pretrain", "--fasta", HPYLORI, "--out", run, "--max-steps", 8,
                          *common)
    assert rc == 2 and "--resume" in err
    rc, _, err = seqmamba("dna", "pretrain", "--fasta", HPYLORI, "--out", run, "--max-steps", 9,
                          "--val-every", 3, "--resume", *common)
    assert rc == 0, err
    assert json.loads((run / "report.json").read_text())["steps"] == 9
    # fine-tune from the pretrained backbone
    ft = tmp_path / "ft"
    rc, out, err = seqmamba("dna", "finetune", "--train", PROMOTERS, "--out", ft, "--init", run,
                            "--max-steps", 4, "--val-every", 4, "--batch-size", 8,
                            "--no-progress", "--warmup-steps", 1)
    assert rc == 0, err
    rep = json.loads((ft / "report.json").read_text())
    assert rep["labels"] == ["non_promoter", "promoter"] and rep["val_examples"] == 22
    assert {"acc", "mcc", "macro_f1", "auroc"} <= set(rep["model"]) and "baseline" in rep
    assert (ft / "confusion.png").exists()
    rc, _, err = seqmamba("dna", "predict", "--model", ft, PROMOTERS, "--out", tmp_path / "p.tsv",
                          "--no-progress")
    assert rc == 0, err
    assert len(rows(tmp_path / "p.tsv")) == 106
    rc, _, err = seqmamba("dna", "generate", "--model", run, "--prompt", "ACGT", "--length", 50,
                          "--num", 2, "--out", tmp_path / "gen.fa")
    assert rc == 0, err
    recs = (tmp_path / "gen.fa").read_text().split(">")[1:]
    seqs = ["".join(r.splitlines()[1:]) for r in recs]
    assert len(seqs) == 2 and all(len(s) == 54 and set(s) <= set("ACGT") for s in seqs)


def test_lm_prediction_reports_bits_per_base(tmp_path):
    lm = tiny_lm(tmp_path / "lm")
    fa = write(tmp_path / "g.fa", ">r1\n" + "ACGT" * 30 + "\n")
    rc, _, err = seqmamba("dna", "predict", "--model", lm, fa, "--out", tmp_path / "p.tsv",
                          "--chunk-size", 16, "--no-progress")
    assert rc == 0, err
    bpb = float(rows(tmp_path / "p.tsv")[0]["bits_per_base"])
    assert 0.5 < bpb < 6  # an untrained 12-token model: about log2(12) = 3.6 bits


def test_ddp_two_cpu_ranks_draw_different_windows_and_agree_on_weights(tmp_path):
    run = tmp_path / "ddp"
    rc, _, err = seqmamba("dna", "pretrain", "--fasta", HPYLORI, "--out", run, "--seq-len", 64,
                          "--max-steps", 3, "--batch-size", 4, "--d-model", 32, "--n-layer", 2,
                          "--val-every", 3, "--val-windows", 8, "--markov-orders", 0,
                          "--accelerator", "cpu", "--devices", 2, "--strategy", "ddp",
                          "--audit-dir", run / "audit", "--no-progress")
    assert rc == 0, err
    r0 = json.loads((run / "audit" / "rank0.json").read_text())
    r1 = json.loads((run / "audit" / "rank1.json").read_text())
    assert r0["world_size"] == 2 and len(r0["windows"]) == len(r1["windows"]) == 12
    assert not set(r0["windows"]) & set(r1["windows"])
    assert r0["weights_sha256"] == r1["weights_sha256"]


def test_species_of_origin_table(tmp_path):
    """`seqmamba dna species` on tiny settings: one row per window length, model beside the
    3-mer baseline on the same held-out windows, written with the run's settings."""
    run = tmp_path / "species"
    rc, out, err = seqmamba("dna", "species", "--out", run, "--lengths", 64, 128,
                            "--test-lengths", 256, 64, 128, "--max-steps", 3, "--val-every", 3,
                            "--test-per-class", 4,
                            "--baseline-train-per-class", 10, "--d-model", 16, "--n-layer", 1,
                            "--batch-size", 4, "--warmup-steps", 1, "--ema", 0.5, "--no-progress")
    assert rc == 0, err
    rep = json.loads((run / "report.json").read_text())
    assert rep["labels"] == ["ecoli", "saureus", "hpylori", "vcholerae", "mtb"]
    assert rep["steps"] == 3 and rep["ema"] == 0.5 and rep["train_seconds"] > 0
    # the size a comparison matches models on is the saved model's
    assert rep["arch"] == "mamba"
    assert rep["parameters"] == seqmamba_lib.from_pretrained(str(run / "final")).num_parameters()
    # scored at every --test-lengths, in order, the one longer than any trained on marked so
    assert [(r["length"], r["trained"]) for r in rep["accuracy_by_length"]] == \
        [(64, True), (128, True), (256, False)]
    for r in rep["accuracy_by_length"]:
        assert r["n_test"] == 20
    # 3 steps teach the model nothing, but the baseline fitted on the same windows must beat
    # the 0.2 of chance at 128 bases (a broken window reader or label map would not)
    assert rep["accuracy_by_length"][1]["kmer3_logreg_acc"] >= 0.4, rep["accuracy_by_length"]
    with open(run / "accuracy_by_length.csv") as f:
        assert [row["length"] for row in csv.DictReader(f)] == ["64", "128", "256"]
    assert "length     64: model" in out and (run / "final" / "model.safetensors").exists()


def test_species_refuses_a_window_no_genome_part_holds(tmp_path):
    """A test length longer than a species' held-out part is refused in one line naming the
    option, before any training (no run directory is written)."""
    run = tmp_path / "species"
    rc, out, err = seqmamba("dna", "species", "--out", run, "--lengths", 64,
                            "--test-lengths", 64, 10 ** 8, "--max-steps", 2, "--no-progress")
    assert rc == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert "--test-lengths 100000000" in line and "held-out part" in line, err
    assert not run.exists()


def test_finetune_learns_a_task_it_must_learn(tmp_path):
    """GC-rich against AT-rich windows (a composition any working classifier separates): a
    broken model, loss or label mapping stays near the 0.5 of chance; a working one does not.
    The report and the predictions must agree on it."""
    rng = np.random.default_rng(0)
    lines = ["id\tlabel\tsequence"]
    for i in range(240):
        label = ("gc_rich", "at_rich")[i % 2]
        p_gc = 0.7 if label == "gc_rich" else 0.3
        seq = "".join(rng.choice(list("GCAT"), 80, p=[p_gc / 2, p_gc / 2, (1 - p_gc) / 2,
                                                        (1 - p_gc) / 2]))
        lines.append(f"s{i}\t{label}\t{seq}")
    table = tmp_path / "gc.tsv"
    table.write_text("\n".join(lines) + "\n")
    run = tmp_path / "gc"
    rc, _, err = seqmamba("dna", "finetune", "--train", table, "--out", run, "--max-steps", 60,
                          "--val-every", 60, "--batch-size", 16, "--d-model", 32, "--n-layer", 1,
                          "--lr", 3e-3, "--warmup-steps", 5, "--no-progress", "--baseline", "cnn",
                          "--baseline-steps", 90)
    assert rc == 0, err
    rep = json.loads((run / "report.json").read_text())
    assert rep["model"]["acc"] >= 0.9, rep["model"]
    # the one-hot CNN baseline: the model's parameter count (within 10%), the steps it was
    # given (more than the model's, as for a comparison at equal time), and it separates the
    # classes too
    params, base = rep["parameters"], rep["baseline"]
    assert base["name"].startswith("one-hot CNN") and base["acc"] >= 0.9, base
    assert abs(base["parameters"] - params) <= 0.1 * params and base["steps"] == 90, base
    # each reports its typical step, a small part of its whole training time
    for r in (rep, base):
        assert 0 < r["step_seconds"] < r["train_seconds"] / 20, r
    rc, _, err = seqmamba("dna", "predict", "--model", run, table, "--out", tmp_path / "p.tsv",
                          "--no-progress")
    assert rc == 0, err
    got = rows(tmp_path / "p.tsv")
    truth = {line.split("\t")[0]: line.split("\t")[1] for line in lines[1:]}
    assert len(got) == 240
    agree = np.mean([r["label"] == truth[r["record"]] for r in got])
    assert agree >= 0.9, agree


def test_bigwig_track_reads_back_the_bedgraph_values_and_fasta_sizes(tmp_path, classifier):
    """--track x.bw: the same bins as the bedGraph, as bigWig (what IGV and JBrowse open),
    with every record's size from the FASTA index in its header."""
    import pyBigWig

    fa = write(tmp_path / "g.fa", ">chrA\n" + "ACGTTGCA" * 300 + "\n>chrB\n" + "GATTACA" * 200 + "\n")
    common = ["--model", classifier, fa, "--track-bin", 50, "--no-progress"]
    assert seqmamba("dna", "predict", *common, "--out", tmp_path / "a.tsv", "--track",
                    tmp_path / "t.bedgraph")[0] == 0
    rc, _, err = seqmamba("dna", "predict", *common, "--out", tmp_path / "b.tsv", "--track",
                          tmp_path / "t.bw", "--track-class", "pos")
    assert rc == 0, err
    bw = pyBigWig.open(str(tmp_path / "t.bw"))
    assert bw.chroms() == {"chrA": 2400, "chrB": 1400}
    lines = (tmp_path / "t.bedgraph").read_text().splitlines()[1:]
    got = [(c, s, e, v) for c in ("chrA", "chrB") for s, e, v in bw.intervals(c)]
    assert len(got) == len(lines)
    for (c, s, e, v), line in zip(got, lines):
        c2, s2, e2, v2 = line.split("\t")
        assert (c, s, e) == (c2, int(s2), int(e2)) and abs(v - float(v2)) < 1e-4 * max(1, abs(v))
    # without --track-class: one bigWig per class, whose values sum to one in every bin
    rc, stdout, err = seqmamba("dna", "predict", *common, "--out", tmp_path / "c2.tsv",
                               "--track", tmp_path / "all.bw")
    assert rc == 0, err
    neg, pos = (pyBigWig.open(str(tmp_path / f"all.{c}.bw")) for c in ("neg", "pos"))
    assert "all.neg.bw" in stdout and not (tmp_path / "all.bw").exists()
    for c in ("chrA", "chrB"):
        for (s1, e1, v1), (s2, e2, v2), (s3, e3, v3) in zip(neg.intervals(c), pos.intervals(c),
                                                             bw.intervals(c)):
            assert (s1, e1) == (s2, e2) == (s3, e3) and abs(v1 + v2 - 1) < 1e-4
            assert abs(v2 - v3) < 1e-5
    bw.close()
    # a TSV has no coordinates: one line, and nothing left behind
    rc, _, err = seqmamba("dna", "predict", "--model", classifier, PROMOTERS, "--out",
                          tmp_path / "c.tsv", "--track", tmp_path / "u.bw", "--no-progress")
    assert rc == 2 and "no coordinates" in err and not (tmp_path / "u.bw").exists()
    assert not list(tmp_path.glob(".*.bw"))


def test_per_window_embeddings_with_coordinates(tmp_path, classifier):
    """--embed-window N: mean embeddings of every N-base window with record, start and end;
    weighted by window size they average to the record's pooled embedding."""
    fa = write(tmp_path / "g.fa", ">chrA\n" + "ACGTTGCA" * 130 + "\n>chrB\n" + "GATTACA" * 50 + "\n")
    rc, _, err = seqmamba("dna", "predict", "--model", classifier, fa, "--out", tmp_path / "p.tsv",
                          "--embed", tmp_path / "e.npz", "--embed-window", 100,
                          "--chunk-size", 256, "--no-progress")
    assert rc == 0, err
    e = np.load(tmp_path / "e.npz")
    rec, st, en, we = e["window_record"], e["window_start"], e["window_end"], e["window_embeddings"]
    assert list(rec) == ["chrA"] * 11 + ["chrB"] * 4
    assert st[:3].tolist() == [0, 100, 200] and en[10] == 1040 and en[-1] == 350
    for i, name in enumerate(["chrA", "chrB"]):
        sel = rec == name
        pooled = (we[sel] * (en[sel] - st[sel])[:, None]).sum(0) / (en[sel] - st[sel]).sum()
        assert np.allclose(pooled, e["embeddings"][i], atol=1e-5)


@pytest.mark.parametrize("arch", ["mamba2", "transformer"])
def test_every_block_kind_pretrains_predicts_and_generates_through_the_same_commands(tmp_path,
                                                                                    arch):
    from pipelines.cli import main  # in this process: three commands, no interpreter starts

    run = tmp_path / arch
    assert main(["dna", "pretrain", "--fasta", str(HPYLORI), "--out", str(run), "--arch", arch,
                 "--seq-len", "64", "--max-steps", "2", "--val-every", "2", "--batch-size", "2",
                 "--d-model", "32", "--n-layer", "1", "--head-dim", "16", "--n-head", "2",
                 "--val-windows", "2", "--markov-orders", "0", "--no-progress"]) == 0
    cfg = json.loads((run / "final" / "config.json").read_text())
    assert cfg["arch"] == arch and (arch != "transformer" or cfg["attn_window"] == 64)
    fa = write(tmp_path / "a.fa", ">r\n" + "ACGTTGCA" * 40 + "\n")
    assert main(["dna", "predict", "--model", str(run), str(fa), "--out",
                 str(tmp_path / "p.tsv"), "--chunk-size", "50", "--no-progress"]) == 0
    assert 0 < float(rows(tmp_path / "p.tsv")[0]["bits_per_base"]) < 6
    assert main(["dna", "generate", "--model", str(run), "--length", "30", "--out",
                 str(tmp_path / "g.fa"), "--seed", "0"]) == 0
    assert len("".join((tmp_path / "g.fa").read_text().split("\n")[1:])) >= 30
