"""Crashes and concurrent runs: a run killed with SIGKILL and resumed is the run that was never
interrupted, and a second writer of the same output is refused while the first runs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dna_helpers import DATA, ROOT, seqmamba, tiny_classifier, tiny_lm

HPYLORI = DATA / "genomes" / "Hpylori_G27_NC_011333.1.fa.gz"
TINY = ["--fasta", HPYLORI, "--seq-len", "64", "--batch-size", "2", "--d-model", "8",
        "--n-layer", "1", "--max-steps", "160", "--val-every", "40", "--val-windows", "4",
        "--markov-orders", "0", "--warmup-steps", "5", "--no-progress"]


def _popen(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", *map(str, args)],
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, p, timeout: float = 300) -> None:
    """Wait until ``path`` exists (or the process ``p`` ended)."""
    deadline = time.time() + timeout
    while not path.exists() and p.poll() is None:
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.005)


def _audit(directory: Path) -> dict:
    """step -> windows trained on, the last record of each step winning (a step a killed
    session took and the resumed session took again counts once, as the resumed one)."""
    out = {}
    for line in (directory / "rank0.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[r["step"]] = r["windows"]
    return out


def _train_steps(run: Path) -> list:
    with open(run / "logs" / "metrics.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r.get("train_loss")]


def test_pretraining_killed_and_resumed_is_the_uninterrupted_run(tmp_path):
    whole = tmp_path / "whole"
    rc, _, err = seqmamba("dna", "pretrain", *TINY, "--out", whole, "--audit-dir",
                          tmp_path / "audit_whole")
    assert rc == 0, err
    # the same run, killed once its first checkpoint is on disk, then resumed
    cut = tmp_path / "cut"
    p = _popen("dna", "pretrain", *TINY, "--out", cut, "--audit-dir", tmp_path / "audit_cut")
    _wait_for(cut / "checkpoints" / "last.ckpt", p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (cut / "final").exists(), "the run finished before it could be killed"
    killed_at = max(_audit(tmp_path / "audit_cut"))
    rc, _, err = seqmamba("dna", "pretrain", *TINY, "--out", cut, "--audit-dir",
                          tmp_path / "audit_cut", "--resume")
    assert rc == 0, err
    a, b = _audit(tmp_path / "audit_whole"), _audit(tmp_path / "audit_cut")
    assert sorted(a) == sorted(b) == list(range(160)) and killed_at < 159
    assert a == b  # the same windows at every step, in the same order
    # the same weights at the end, and one loss curve without gaps or repeats
    wa = json.loads((tmp_path / "audit_whole" / "rank0.json").read_text())["weights_sha256"]
    wb = json.loads((tmp_path / "audit_cut" / "rank0.json").read_text())["weights_sha256"]
    assert wa == wb
    assert _train_steps(cut) == _train_steps(whole)
    assert json.loads((cut / "report.json").read_text())["val_bits_per_base"] == \
        json.loads((whole / "report.json").read_text())["val_bits_per_base"]
    assert not list((cut / "logs").glob("metrics.history.csv"))


def test_second_writer_of_one_table_is_refused_while_the_first_runs(tmp_path):
    clf = tiny_classifier(tmp_path / "clf")
    fa = tmp_path / "g.fa"
    fa.write_text(">r\n" + "ACGT" * 250_000 + "\n")
    out = tmp_path / "p.tsv"
    first = _popen("dna", "predict", "--model", clf, fa, "--out", out, "--chunk-size", "4096",
                   "--no-progress")
    lock = Path(str(out) + ".lock")
    _wait_for(lock, first)
    if first.poll() is not None:
        pytest.fail("the first run ended before the second started: " + first.stderr.read())
    rc, _, err = seqmamba("dna", "predict", "--model", clf, fa, "--out", out, "--no-progress")
    assert rc == 2 and "another seqmamba process is writing this table" in err
    assert "Traceback" not in err
    assert first.wait(timeout=300) == 0, first.stderr.read()
    rows = out.read_text().splitlines()
    assert len(rows) == 2 and not lock.exists()  # one header, one record: no doubled row


def test_second_training_in_one_run_directory_is_refused(tmp_path):
    run = tmp_path / "run"
    long = [x if x != "160" else "100000" for x in TINY]  # runs until it is stopped
    first = _popen("dna", "pretrain", *long, "--out", run, "--val-every", "20")
    _wait_for(run / "checkpoints" / "last.ckpt", first)
    try:
        assert first.poll() is None, first.stderr.read()
        assert (run / "run.lock").exists()
        rc, _, err = seqmamba("dna", "pretrain", *long, "--out", run, "--resume")
        assert rc == 2 and "another seqmamba process is writing this run directory" in err, err
        assert "Traceback" not in err
    finally:
        first.kill()
        first.wait()
    # the first was killed: the kernel dropped its lock, so the run resumes
    rc, _, err = seqmamba("dna", "pretrain", *TINY, "--out", run, "--resume")
    assert rc == 0, err
    assert (run / "final" / "model.safetensors").exists() and not (run / "run.lock").exists()


def _limited_file_size(limit: int):
    """preexec_fn: files may grow to ``limit`` bytes, then writes fail with EFBIG (a full disk
    as the process sees it), instead of the default SIGXFSZ that kills it."""
    import resource

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_in_prediction_is_one_line_and_loses_nothing(tmp_path):
    clf = tiny_classifier(tmp_path / "clf")
    fa = tmp_path / "g.fa"
    fa.write_text("".join(f">rec{i}\n{'ACGT' * 50}\n" for i in range(400)))
    fa_index = tmp_path / "g.fa.fai"
    whole = tmp_path / "whole.tsv"
    assert seqmamba("dna", "predict", "--model", clf, fa, "--out", whole, "--no-progress")[0] == 0
    assert fa_index.exists()  # (indexed now, so the limited run below writes only its table)
    out = tmp_path / "p.tsv"
    p = subprocess.run([sys.executable, "-m", "pipelines.cli", "dna", "predict", "--model", clf,
                        fa, "--out", out, "--no-progress", "--track", tmp_path / "t.bedgraph"],
                       cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                       text=True, preexec_fn=_limited_file_size(16_000), timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and "File too large" in p.stderr
    assert not out.exists() and not (tmp_path / "t.bedgraph").exists()
    assert not list(tmp_path.glob("*.tmp"))  # no orphan temporary file
    partial = Path(str(out) + ".partial")
    kept = len(partial.read_text().splitlines()) - 1
    assert kept > 0  # the rows predicted before the disk filled are kept ...
    rc, stdout, err = seqmamba("dna", "predict", "--model", clf, fa, "--out", out, "--no-progress")
    assert rc == 0, err
    # ... and the rerun, with space again, completes the very table an unbroken run writes
    assert out.read_text() == whole.read_text()


def _kill_when(p, path: Path, rows: int):
    """SIGKILL ``p`` once ``path`` holds at least ``rows`` lines (or fail if it ends first)."""
    deadline = time.time() + 300
    while p.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) > rows:
            p.send_signal(signal.SIGKILL)
            p.wait()
            return
        assert time.time() < deadline
        time.sleep(0.005)
    pytest.fail("the run ended before it could be killed: " + p.stderr.read()[-2000:])


@pytest.mark.parametrize("domain", ["dna", "audio"])
def test_prediction_killed_and_rerun_writes_the_unbroken_table(tmp_path, domain):
    if domain == "dna":
        model = tiny_classifier(tmp_path / "clf")
        inputs = [tmp_path / "g.fa"]
        inputs[0].write_text("".join(f">rec{i}\n{'ACGT' * 2000}\n" for i in range(300)))
        out, whole = tmp_path / "p.tsv", tmp_path / "whole.tsv"
    else:
        rc, _, err = seqmamba("audio", "finetune", "--train", DATA / "audio" / "spoken_digits_espeak",
                              "--out", tmp_path / "am", "--seconds", 0.25, "--max-steps", 2,
                              "--val-every", 2, "--d-model", 8, "--n-layer", 1, "--d-state", 4,
                              "--batch-size", 8, "--warmup-steps", 1, "--no-progress")
        assert rc == 0, err
        model, inputs = tmp_path / "am", [DATA / "audio" / "spoken_digits_espeak"]
        out, whole = tmp_path / "p.csv", tmp_path / "whole.csv"
    assert seqmamba(domain, "predict", "--model", model, *inputs, "--out", whole,
                    "--no-progress")[0] == 0
    p = _popen(domain, "predict", "--model", model, *inputs, "--out", out, "--no-progress")
    _kill_when(p, Path(str(out) + ".partial"), 20)
    assert not out.exists()
    rc, _, err = seqmamba(domain, "predict", "--model", model, *inputs, "--out", out,
                          "--no-progress")
    assert rc == 0, err
    assert out.read_text() == whole.read_text()  # byte for byte: nothing lost, nothing doubled
    assert not list(tmp_path.glob("*.partial*")) and not list(tmp_path.glob("*.lock"))


@pytest.mark.parametrize("domain", ["dna", "audio"])
def test_finetuning_killed_and_resumed_ends_with_the_same_model(tmp_path, domain):
    """Shuffled epochs (a function of seed and epoch) resume mid-epoch where they stopped: the
    resumed run exports the same weights, byte for byte, and the same held-out scores."""
    if domain == "dna":
        args = ["dna", "finetune", "--train", DATA / "labelled" / "uci_ecoli_promoters.tsv",
                "--batch-size", 8]
    else:
        args = ["audio", "finetune", "--train", DATA / "audio" / "spoken_digits_espeak",
                "--seconds", 0.25, "--batch-size", 8, "--d-state", 4]
    args += ["--max-steps", 120, "--val-every", 25, "--d-model", 8, "--n-layer", 1,
             "--warmup-steps", 5, "--no-progress"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    rc, _, err = seqmamba(*args, "--out", whole)
    assert rc == 0, err
    p = _popen(*args, "--out", cut)
    _wait_for(cut / "checkpoints" / "last.ckpt", p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (cut / "final").exists(), "the run finished before it could be killed"
    import torch
    before = torch.load(cut / "checkpoints" / "last.ckpt", weights_only=True)
    rc, _, err = seqmamba(*args, "--out", cut, "--resume")
    assert rc == 0, err
    assert "resuming from a checkpoint" not in err  # Lightning's warning: not true here
    assert (cut / "final" / "model.safetensors").read_bytes() == \
        (whole / "final" / "model.safetensors").read_bytes()
    ra, rb = (json.loads((r / "report.json").read_text()) for r in (whole, cut))
    assert ra["model"] == rb["model"] and ra["steps"] == rb["steps"] == 120
    assert ra["hardware"]["devices"] == 1 and ra["hardware"]["precision"] == "32-true"
    # the time to the killed session's checkpoint counts in the resumed run's training time
    assert rb["resumed_from_step"] == before["global_step"] > 0 and "resumed_from_step" not in ra
    assert before["train_seconds"] > 0
    assert rb["train_seconds"] == pytest.approx(before["train_seconds"] + rb["session_seconds"],
                                                abs=0.11)


def test_one_long_record_killed_mid_record_resumes_inside_it(tmp_path):
    """A single-record genome: the carried state is saved as it goes (--save-every 0: after
    every chunk), so a rerun continues inside the record, and the table and the track equal
    an unbroken run's byte for byte."""
    lm = tmp_path / "lm"
    from dna_helpers import tiny_lm

    tiny_lm(lm)
    fa = tmp_path / "chr.fa"
    rng = __import__("numpy").random.default_rng(1)
    fa.write_text(">chr1\n" + "".join(rng.choice(list("ACGT"), 400_000)) + "\n")
    common = ["--chunk-size", "2048", "--track-bin", "100", "--no-progress"]
    whole, wt = tmp_path / "whole.tsv", tmp_path / "whole.bedgraph"
    assert seqmamba("dna", "predict", "--model", lm, fa, "--out", whole, "--track", wt,
                    *common)[0] == 0
    out, track = tmp_path / "p.tsv", tmp_path / "p.bedgraph"
    state = tmp_path / "p.tsv.partial.record.safetensors"
    p = _popen("dna", "predict", "--model", lm, fa, "--out", out, "--track", track,
               "--save-every", "0", *common)
    _wait_for(state, p)
    time.sleep(0.3)  # a few more chunks: killed mid-record, between two saves or in one
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not out.exists() and state.exists()
    from safetensors import safe_open

    with safe_open(str(state), "pt") as f:
        resumed_from = int(f.metadata()["start"])
    assert 0 < resumed_from < 400_000
    rc, _, err = seqmamba("dna", "predict", "--model", lm, fa, "--out", out, "--track", track,
                          *common)
    assert rc == 0, err
    assert f"continuing chr1 from base {resumed_from:,}" in err  # not from the start
    assert out.read_text() == whole.read_text() and track.read_text() == wt.read_text()
    assert not state.exists() and not list(tmp_path.glob(".*.tmp*"))


def test_variant_scoring_killed_and_rerun_writes_the_unbroken_vcf(tmp_path):
    """score-variants appends its scores to OUT.scores.partial: killed mid-way and rerun, it
    scores only the rest, and the VCF is byte for byte the one an unbroken run writes."""
    rng = np.random.default_rng(5)
    chrom = "".join(rng.choice(list("ACGT"), 3000))
    fa = tmp_path / "ref.fa"
    fa.write_text(f">chr1\n{chrom}\n")
    other = {"A": "C", "C": "G", "G": "T", "T": "A"}
    rows = [f"chr1\t{p}\tv{p}\t{chrom[p - 1]}\t{other[chrom[p - 1]]}\t.\tPASS\t."
            for p in range(100, 2900, 2)]
    vcf = tmp_path / "in.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=3000>\n"
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + "\n".join(rows) + "\n")
    lm = tiny_lm(tmp_path / "lm")
    args = ["dna", "score-variants", "--model", lm, "--fasta", fa, "--vcf", vcf,
            "--window", 64, "--batch-size", 4]
    whole, out = tmp_path / "whole.vcf", tmp_path / "out.vcf"
    assert seqmamba(*args, "--out", whole)[0] == 0
    p = _popen(*args, "--out", out)
    _kill_when(p, tmp_path / "out.vcf.scores.partial", 200)
    assert not out.exists()
    rc, _, err = seqmamba(*args, "--out", out)
    assert rc == 0, err
    assert "continuing" in err
    assert out.read_text() == whole.read_text()
    assert not list(tmp_path.glob("*.partial*")) and not list(tmp_path.glob("*.lock"))
