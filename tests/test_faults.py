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

import pytest

from dna_helpers import DATA, ROOT, seqmamba, tiny_classifier

HPYLORI = DATA / "genomes" / "Hpylori_G27_NC_011333.1.fa.gz"
TINY = ["--fasta", HPYLORI, "--seq-len", "64", "--batch-size", "2", "--d-model", "8",
        "--n-layer", "1", "--max-steps", "160", "--val-every", "40", "--val-windows", "4",
        "--markov-orders", "0", "--warmup-steps", "5", "--no-progress"]


def _popen(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", *map(str, args)],
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


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
    deadline = time.time() + 300
    while not (cut / "checkpoints" / "last.ckpt").exists() and p.poll() is None:
        assert time.time() < deadline
        time.sleep(0.01)
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
    deadline = time.time() + 120
    while not lock.exists() and first.poll() is None:
        assert time.time() < deadline
        time.sleep(0.01)
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
    deadline = time.time() + 120
    while not (run / "checkpoints" / "last.ckpt").exists() and first.poll() is None:
        assert time.time() < deadline
        time.sleep(0.01)
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
