"""``seqmamba audio predict``: batch prediction on audio files, folders and glob patterns.

One output row per file: for a classifier the predicted label and the probability of every
class; for a mu-law language model the file's bits per sample.  Each file is read whole (mono,
resampled to the model's rate) and goes through the model in one piece, not a crop; a file
shorter than the classifier's training clips is centred in silence as in its evaluation.
Causal models read long files in pieces of ``--chunk-seconds`` with the state carried, so
memory stays bounded; a file longer than ``--max-seconds`` is reported and skipped.  Several
``--model`` classifiers (e.g. one recipe trained with several seeds) are an ensemble: each
file's class probabilities are the mean of theirs.  ``--balance`` re-weights a classifier's
probabilities over all the files towards equally frequent classes (``pipelines/balance.py``),
for a batch known to hold each class about equally often; the table is then written whole at
the end, from the model's own probabilities kept in ``OUT.partial``.  When a classifier's
batch looks like a voice or microphone it was not trained on (its mean top probability well
below the run's on its held-out clips: ``pipelines/audio/voice_check.py``), one line on stderr
says so and names what helps: ``--balance --balance-by folder``, or ``seqmamba audio adapt``.

INPUTs are files, folders (searched recursively for .wav and .flac) or glob patterns
(quoted, e.g. 'clips/**/*.wav').  A file that cannot be used (empty, truncated, not audio,
NaN samples, too long ...) is reported on stderr and in ``OUT.errors.tsv`` (columns file,
record, error, as ``dna predict`` writes it; record empty) and the others are still predicted;
exit code 2 then, and no output file if every input failed.  Rows are appended to
``OUT.partial`` as files are done and renamed to ``OUT`` at the end, so the output is never
half written; rerunning the same command continues from ``OUT.partial``.  INPUTs may also be
CSV manifests (path,label[,split][,group]): their clips are predicted and the table is scored
against their labels (OUT.metrics.json, OUT.confusion.png).

This module parses and checks the options; the work is in ``pipelines.audio.predictor``
(inputs, the model or ensemble, the table, --balance, --track) and
``pipelines.audio.evaluation`` (the scores).
"""

from __future__ import annotations

import argparse

from ..errors import InputError
from ..options import add_field, add_renamed, check_range
from .args import add_max_seconds
from .predictor import predict_files


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqmamba audio predict", description=__doc__.split("\n")[0])
    p.add_argument("inputs", nargs="+",
                   help="audio files, folders, glob patterns, or CSV manifests "
                        "(path,label[,split][,group]: labelled clips are also scored)")
    add_field(p, "model", action="append",
              help="RUN directory (or RUN/final) of seqmamba audio finetune or pretrain; repeat "
                   "it for an ensemble of classifiers (probabilities averaged)")
    add_field(p, "out", required=False, help="predictions, one row per file (.csv, or .tsv)")
    add_field(p, "track", help="classifiers: class probabilities over time along each "
                               "recording, any length, in bounded memory (.csv: file, start, "
                               "end, label, p_...)")
    p.add_argument("--window-seconds", type=float, default=None,
                   help="--track: seconds per window (default: the model's training clips; it "
                        "was --window)")
    add_renamed(p, "--window", "--window-seconds", "--track's window in seconds",
                "a window in bases (dna predict, score-variants)")
    p.add_argument("--hop", type=float, default=None,
                   help="--track: seconds between window starts (default: a quarter window)")
    add_max_seconds(p, help="longer files are reported and skipped")
    p.add_argument("--chunk-seconds", type=float, default=10.0,
                   help="causal models: seconds per piece (state carried between pieces)")
    add_field(p, "batch_size", default=32,
              help="classifiers: clips of the training length (or shorter) predicted together; "
                   "longer files go one at a time")
    p.add_argument("--balance", type=float, nargs="?", const=1.0, default=None,
                   metavar="STRENGTH",
                   help="classifiers, --out: the inputs hold every class about equally often "
                        "(e.g. one voice saying each digit a few times); re-weight the classes "
                        "so that over all inputs each is predicted equally often on average, "
                        "which undoes a model's bias on an unheard voice (pipelines/balance.py). "
                        "Wrong when the classes are skewed: STRENGTH < 1 (e.g. 0.3) goes part "
                        "of the way, for a smaller gain and loss (README, FSDD)")
    p.add_argument("--balance-by", choices=("all", "group", "folder"), default="all",
                   help="--balance: all inputs as one batch (all), each group of the CSV "
                        "manifests' group column on its own (group: one speaker each), or "
                        "the files of each folder on its own (folder); each batch must hold "
                        "every class about equally often")
    for name in ("restart", "no_progress", "device"):
        add_field(p, name)
    return p


def run(argv=None) -> int:
    a = build_parser().parse_args(argv)
    check_range(a, "chunk_seconds", 0, low_open=True)
    check_range(a, "max_seconds", 0, low_open=True, optional=True)
    check_range(a, "batch_size", 1)
    if a.out is None and a.track is None:
        raise InputError("nothing to write: pass --out (a row per file) and/or --track "
                         "(probabilities over time)")
    if a.balance is not None and not 0.0 < a.balance <= 1.0:
        raise InputError(f"--balance {a.balance}: the strength must be in (0, 1]")
    if a.balance is not None and a.out is None:
        raise InputError("--balance re-weights the rows of --out; --track is not balanced",
                         fix="add --out FILE, or drop --balance")
    if a.balance_by != "all" and a.balance is None:
        raise InputError(f"--balance-by {a.balance_by} says how --balance groups the files",
                         fix="add --balance, or drop --balance-by")
    return predict_files(a.inputs, a.model, out=a.out, track=a.track, window=a.window_seconds,
                         hop=a.hop, max_seconds=a.max_seconds, chunk_seconds=a.chunk_seconds,
                         batch_size=a.batch_size, balance=a.balance, balance_by=a.balance_by,
                         restart=a.restart, progress=not a.no_progress, device=a.device)
