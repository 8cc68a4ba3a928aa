"""``seqmamba audio finetune``: clip classification from raw waveforms.

Input: a CSV manifest (``path,label[,split][,group]``) or a folder with one subfolder per
label (see ``pipelines/audio/datasets.py``).  Without ``--val`` the training set is split:
by its split column when it has one, else whole groups held out (speakers, accents: the
model is never scored on a group it trained on), else a stratified ``--val-fraction``.

Every clip is read mono at ``--sample-rate`` and fitted to ``--seconds``: a random crop (or
a random place inside silence for a short clip) in training, the centre in evaluation.  The
model reads the raw samples in non-overlapping frames of ``--frame-size`` (10 ms at 16 kHz)
with a bidirectional Mamba backbone (``--causal`` for a one-directional one), pooled over
the clip (``--pooling``: mean by default) into a linear classifier.  With ``--init`` it
starts from an audio model: a waveform classifier (new head), or a mu-law language model of
``seqmamba audio pretrain`` (the classifier then reads mu-law samples, one position per
sample).  With ``--unlabelled`` it also trains on recordings that have no labels: the clips
that ``--teacher`` classifiers (by default ``--init``) label with a top probability of at least
``--pseudo-threshold`` join the training set with that label (``pipelines/audio/pseudo_labels.py``;
the labels are kept in ``RUN/pseudo_labels.csv``).

The report gives accuracy, macro-F1, MCC and AUROC on the held-out clips next to a log-mel +
logistic-regression baseline fitted on the same split, a confusion-matrix PNG, loss curves
and RUN/final for ``seqmamba audio predict``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..options import add_field, check_range
from ..runs import add_pooling_arg, add_trainer_args, parse_with_recipe
from .args import add_clip_reading_args, add_clip_set_args, add_frontend_args, train_sources
from .classifier_training import train_classifier


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqmamba audio finetune", description=__doc__.split("\n")[0])
    g = p.add_argument_group("data")
    add_clip_set_args(g, "CSV manifest (path,label[,split][,group]) or folder per label")
    add_field(g, "seconds", help="clip length trained on (crop length)")
    add_field(g, "sample_rate", help="clips are resampled to this rate (default 16000, or "
                                     "--init's)")
    add_clip_reading_args(g)
    g.add_argument("--shift-seconds", type=float, default=0.0,
                   help="augmentation: random time shift of up to this much (zero-filled)")
    g.add_argument("--gain-db", type=float, default=0.0,
                   help="augmentation: random gain of up to +-this many dB")
    g.add_argument("--eq-db", type=float, default=0.0,
                   help="augmentation: random peaking-EQ bands of up to +-this many dB")
    g.add_argument("--band-limit", type=float, default=0.0,
                   help="augmentation: pass this fraction of clips through a random narrower "
                        "channel (a low-pass from 1.5 kHz up, half of them a high-pass too)")
    g.add_argument("--speed", type=float, default=0.0,
                   help="augmentation: random speed (tempo and pitch) change of up to +-this "
                        "fraction, e.g. 0.1")
    g.add_argument("--tempo", type=float, default=0.0,
                   help="augmentation: random tempo change at the same pitch, from 1/(1+this) to "
                        "1+this times as fast, e.g. 0.5 (fast and slow talkers)")
    g.add_argument("--formant", type=float, default=0.0,
                   help="augmentation: move the formants (vocal tract resonances) by a factor from "
                        "1/(1+this) to 1+this at the same pitch and timing, e.g. 0.15")
    g.add_argument("--reverb", type=float, default=0.0,
                   help="augmentation: put this fraction of clips in a random synthetic room "
                        "(RT60 0.1-0.7 s), e.g. 0.5")
    g.add_argument("--trim", type=float, default=0.0,
                   help="augmentation: cut the quiet start and end (10-30 dB below the peak) off "
                        "this fraction of clips, as a tight recorder or editor does, e.g. 0.5")
    g.add_argument("--babble-snr", type=float, default=0.0,
                   help="augmentation: add babble of 1-3 other training clips to half the "
                        "clips, at an SNR of this many dB up to 20 dB more, e.g. 5 (0: off)")
    g = p.add_argument_group("unlabelled recordings (pseudo-labels)")
    g.add_argument("--unlabelled", nargs="+", default=None, metavar="INPUT",
                   help="recordings without labels of the voices, microphones or rooms the "
                        "model is for (files, folders, glob patterns): the clips the --teacher "
                        "classifiers are sure of join the training set with the class they name")
    g.add_argument("--teacher", type=Path, nargs="+", default=None, metavar="RUN",
                   help="classifier runs that label --unlabelled (several: their probabilities "
                        "averaged; default: --init)")
    g.add_argument("--pseudo-threshold", type=float, default=0.9,
                   help="keep an unlabelled clip when the teachers' top class probability is at "
                        "least this")
    g.add_argument("--pseudo-repeat", type=int, default=4,
                   help="each kept clip appears this many times in the training set (its weight "
                        "against the labelled clips)")
    g.add_argument("--pseudo-balance", type=float, nargs="?", const=1.0, default=None,
                   metavar="STRENGTH",
                   help="the --unlabelled clips hold every class about equally often: re-weight "
                        "the teachers' probabilities over them towards equally frequent classes "
                        "before labelling (as audio predict --balance; STRENGTH < 1 goes part "
                        "of the way)")
    g.add_argument("--pseudo-balance-by", choices=("all", "folder"), default="all",
                   help="--pseudo-balance: over all --unlabelled clips (all), or over the clips "
                        "of each folder on its own (folder: one voice a folder)")
    g = p.add_argument_group("model")
    add_field(g, "init", help="audio model to start from (RUN or RUN/final of finetune or "
                              "pretrain)")
    add_frontend_args(g)
    add_pooling_arg(g)
    g.add_argument("--causal", action="store_true",
                   help="a one-directional backbone (default: bidirectional 'add')")
    add_field(g, "baseline", default="logmel", choices=["logmel", "cnn", "none"])
    add_field(g, "baseline_steps")
    add_trainer_args(p, exclude=("rc_equivariant",))  # a DNA strand symmetry
    p.set_defaults(bidirectional="add")
    return p


def run(argv=None) -> int:
    a = parse_with_recipe(build_parser(), argv)
    train_sources(a)
    if a.train is None:
        raise InputError("no input: pass --train CSV (path,label[,group]) or a folder per label")
    check_ranges(a)
    if a.frontend_norm and a.frontend != "filterbank":
        raise InputError("--frontend-norm acts on filterbank energies",
                         fix="add --frontend filterbank, or drop --frontend-norm")
    return train_classifier(a)


# (option, lowest, highest, whether the highest is allowed); None: no bound
# each numeric option's range (pipelines.options.check_range): a crop must be longer than 0
RANGES = (dict(name="seconds", low=0, low_open=True), dict(name="shift_seconds", low=0),
          dict(name="gain_db", low=0), dict(name="eq_db", low=0), dict(name="babble_snr", low=0),
          dict(name="speed", low=0, high=0.5, high_open=True),
          *(dict(name=n, low=0, high=1) for n in ("reverb", "trim", "tempo", "formant",
                                                   "band_limit")))


def check_ranges(a) -> None:
    """Each numeric option in its range, or one line naming that option and the range."""
    for rule in RANGES:
        check_range(a, **rule)
