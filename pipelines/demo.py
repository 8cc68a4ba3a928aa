"""``seqmamba demo``: the three jobs end to end on the bundled data, in about ten minutes on a
2-core CPU, ending with a table of the model beside a classic baseline on every task.

1. Pretrain a DNA language model on E. coli (first 90% of the chromosome) and score the
   held-out last 10% in bits per base beside Markov models of orders 0-8 on the same split.
2. Fine-tune a splice-junction classifier (UCI primate donor/acceptor/neither, stratified 20%
   held out; the ``dna_splice`` recipe's model) beside one-hot logistic regression.
3. Batch prediction: the splice table through the classifier, and the H. pylori genome through
   the language model in 64 kb chunks with carried state (bits per base and a bedGraph track).
4. Fine-tune a spoken-digit classifier on raw 8 kHz waveforms of three real speakers (FSDD)
   and score it on a fourth it never heard, beside log-mel logistic regression; then
   batch-predict that speaker's clips.

The settings are the shortest at which each model is measured ahead of its baseline; what
the longer recipes reach is in the docs (docs/dna.md, docs/audio.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from seqmamba.atomic import write_text_atomic

from .bundled import bundled

def _banner(text: str) -> None:
    print(f"\n== {text} ==", flush=True)


def _report(run: Path) -> dict:
    return json.loads((run / "report.json").read_text())


def demo_dna(workdir: Path, pretrain_steps: int, splice_steps: int) -> int:
    from .cli import run_command

    def dna(argv):
        return run_command("dna", argv[0], argv[1:])

    data = bundled("data")
    quiet = ["--no-progress"]
    _banner(f"DNA 1/3: pretrain a language model on E. coli ({pretrain_steps} steps); held-out "
            "bits per base beside Markov models")
    rc = dna(["pretrain", "--config", "dna_pretrain_ecoli", "--out", str(workdir / "pretrain"),
              "--max-steps", str(pretrain_steps), "--val-every", str(pretrain_steps),
              "--warmup-steps", str(max(1, min(100, pretrain_steps // 5))), *quiet])
    if rc:
        return rc
    _banner(f"DNA 2/3: splice-junction classifier ({splice_steps} steps) beside one-hot "
            "logistic regression")
    rc = dna(["finetune", "--config", "dna_splice", "--out", str(workdir / "splice"),
              "--max-steps", str(splice_steps), "--val-every", str(splice_steps),
              "--warmup-steps", str(max(1, min(100, splice_steps // 10))), *quiet])
    if rc:
        return rc
    _banner("DNA 3/3: batch prediction (the splice table; the H. pylori genome in 64 kb chunks "
            "through the language model, bits per base in 1 kb bins)")
    rc = dna(["predict", "--model", str(workdir / "splice"),
              str(data / "labelled" / "uci_splice_junctions_statlog.tsv"),
              "--out", str(workdir / "splice_predictions.tsv"), *quiet])
    if rc:
        return rc
    return dna(["predict", "--model", str(workdir / "pretrain"),
                str(data / "genomes" / "Hpylori_G27_NC_011333.1.fa.gz"),
                "--out", str(workdir / "hpylori_bits.tsv"),
                "--track", str(workdir / "hpylori_bits.bedgraph"), "--track-bin", "1000",
                *quiet])


def demo_audio(workdir: Path, steps: int) -> int:
    from .cli import run_command

    def audio(argv):
        return run_command("audio", argv[0], argv[1:])

    fsdd = bundled("data", "audio", "fsdd")
    _banner(f"audio: spoken digits from raw 8 kHz waveforms of 3 real speakers ({steps} steps), "
            "scored on a 4th never heard")
    rc = audio(["finetune", "--train", str(fsdd / "manifest.csv"), "--split", "group",
                "--val-groups", "nicolas", "--out", str(workdir / "digits"),
                "--sample-rate", "8000", "--frame-size", "80", "--seconds", "1.0",
                "--frontend", "filterbank", "--speed", "0.15", "--eq-db", "8",
                "--shift-seconds", "0.1", "--gain-db", "6", "--d-model", "48", "--n-layer", "2",
                "--dropout", "0.1", "--ema", "0.995", "--max-steps", str(steps),
                "--val-every", str(steps), "--batch-size", "32",
                "--warmup-steps", str(max(1, min(50, steps // 10))), "--no-progress"])
    if rc:
        return rc
    _banner("audio: batch prediction on the unheard speaker's clips")
    return audio(["predict", "--model", str(workdir / "digits"),
                  str(fsdd / "recordings" / "*_nicolas_*.wav"),
                  "--out", str(workdir / "digit_predictions.csv"), "--no-progress"])


def summary(workdir: Path) -> str:
    """The closing table (task, model, baseline, plots) from the runs' report.json files."""
    rows = []
    pre = workdir / "pretrain"
    if (pre / "report.json").is_file():
        r = _report(pre)
        rows.append(("E. coli held-out 10%, bits per base (lower is better)",
                     f"{r['val_bits_per_base']:.4f}",
                     f"Markov order {r['best_markov_order']}: {r['best_markov_bits_per_base']:.4f}",
                     pre / "loss_curve.png"))
    splice = workdir / "splice"
    if (splice / "report.json").is_file():
        r = _report(splice)
        rows.append(("splice junctions, held-out 20%, accuracy", f"{r['model']['acc']:.4f}",
                     f"{r['baseline']['name']}: {r['baseline']['acc']:.4f}",
                     splice / "confusion.png"))
    digits = workdir / "digits"
    if (digits / "report.json").is_file():
        r = _report(digits)
        who = ", ".join(r["split"]["val_groups"])
        rows.append((f"spoken digits, unheard speaker ({who}), accuracy",
                     f"{r['model']['acc']:.4f}",
                     f"log-mel + logistic regression: {r['baseline']['acc']:.4f}",
                     digits / "confusion.png"))
    if not rows:
        return ""
    head = ("task", "seqmamba", "classic baseline, same split", "plots")
    table = [head] + [(t, m, b, str(p)) for t, m, b, p in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += ["", "what the longer recipes reach: docs/dna.md and docs/audio.md"]
    return "\n".join(lines)


def run_demo(workdir: Path, pretrain_steps: int, splice_steps: int, audio_steps: int) -> int:
    if workdir.exists():
        shutil.rmtree(workdir)  # the demo's own scratch directory
    if pretrain_steps > 0 and splice_steps > 0:
        rc = demo_dna(workdir, pretrain_steps, splice_steps)
        if rc:
            return rc
    if audio_steps > 0:
        rc = demo_audio(workdir, audio_steps)
        if rc:
            return rc
    text = summary(workdir)
    if text:
        _banner("summary")
        print(text, flush=True)
        write_text_atomic(text + "\n", workdir / "summary.txt")
    return 0
