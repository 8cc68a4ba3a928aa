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
import os
from pathlib import Path
from typing import Optional

from torch.utils.data import DataLoader

from seqmamba.atomic import write_csv_atomic

from ..errors import InputError
from ..options import add_field
from ..runs import add_pooling_arg, add_trainer_args, parse_with_recipe
from .args import (add_clip_reading_args, add_clip_set_args, add_frontend_args, frontend_config,
                   train_sources)
from . import pseudo_labels
from .augment import Augmented
from .datasets import (AudioClips, collate, joined_clip_sets, label_names, read_clips,
                       split_clips, split_fields, split_method)
from .models import encode_input, model_extra, resolve_model_dir

# ---------------------------------------------------------------- data

class Batches:
    """collate -> the batch a ClassifierTask reads: input_ids (the encoded waveform), label."""

    def __init__(self, encoding: str):
        self.encoding = encoding

    def __call__(self, items):
        b = collate(items)
        return {"input_ids": encode_input(b["waveform"], self.encoding), "label": b["label"]}


def split_sets(a) -> tuple:
    """(train clips, val clips, how the split was made)."""
    clips = joined_clip_sets(a.train)
    if a.val is not None:
        val = read_clips(a.val)
        shared = {c.path for c in clips} & {c.path for c in val}
        if shared:
            raise InputError(f"{len(shared)} clip(s) of --val are in --train too (e.g. "
                             f"{sorted(shared)[0]})", path=a.val,
                             fix="held-out clips must not be trained on")
        return clips, val, "--val"
    how = split_method(clips, a.split, a.val_groups)
    s = split_clips(clips, how, a.val_fraction, a.seed, a.val_groups)
    if not s["val"]:
        raise InputError("the split leaves no held-out clips", path=a.train[0],
                         fix="pass --val, or raise --val-fraction")
    return s["train"], s["val"], how


def pseudo_labelled(a, names, init, labelled, val_clips) -> tuple:
    """(pseudo-label rows, their report summary) for ``--unlabelled``: labelled now by the
    teachers, or read back from RUN/pseudo_labels.csv when a run resumes (the same clips as
    before the stop).  Bad input is one InputError, raised before RUN is made."""
    teachers = [resolve_model_dir(t) for t in a.teacher] if a.teacher else \
        ([init] if init else None)
    if not teachers:
        raise InputError("--unlabelled needs classifiers to label its clips",
                         fix="pass --teacher RUN (or --init RUN of a classifier)")
    if not 0.0 < a.pseudo_threshold <= 1.0 or a.pseudo_repeat < 1:
        raise InputError("--pseudo-threshold must be in (0, 1] and --pseudo-repeat >= 1")
    if a.pseudo_balance is not None and not 0.0 < a.pseudo_balance <= 1.0:
        raise InputError(f"--pseudo-balance {a.pseudo_balance}: the strength must be in (0, 1]")
    from ..training import uses_gpu

    table = a.out / pseudo_labels.TABLE
    if a.resume and table.is_file():
        rows = pseudo_labels.read_labels(table)
    else:
        rows = pseudo_labels.mark_kept(
            pseudo_labels.label_files(teachers, a.unlabelled, names, a.max_seconds,
                                      "cuda" if uses_gpu(a.accelerator) else "cpu",
                                      progress=not a.no_progress, balance=a.pseudo_balance,
                                      balance_by=a.pseudo_balance_by),
            a.pseudo_threshold)
    unlabelled = [os.path.normpath(r["file"]) for r in rows]
    clash = sorted(set(unlabelled) & {os.path.normpath(c.path) for c in labelled})
    if clash:
        raise InputError(f"{len(clash)} clip(s) of --unlabelled are labelled training clips too "
                         f"(e.g. {clash[0]})", fix="--unlabelled is for clips without labels")
    kept = sum(int(r["kept"]) for r in rows)
    if not kept:
        raise InputError(f"no clip of --unlabelled ({len(rows)}) reaches --pseudo-threshold "
                         f"{a.pseudo_threshold}", fix="lower --pseudo-threshold")
    info = pseudo_labels.summary(rows, a.pseudo_threshold, a.pseudo_repeat, teachers,
                                 a.pseudo_balance, a.pseudo_balance_by)
    # a held-out clip that was also pseudo-labelled: its score is adaptation to that very clip
    info["val_clips_unlabelled_too"] = len({os.path.normpath(c.path) for c in val_clips}
                                           & set(unlabelled))
    print(f"pseudo-labels: {kept} of {len(rows)} --unlabelled clips kept (the teachers' top "
          f"probability >= {a.pseudo_threshold}), each {a.pseudo_repeat} times", flush=True)
    return rows, info


# ---------------------------------------------------------------- command

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
    add_field(g, "baseline", default="logmel", choices=["logmel", "none"])
    add_trainer_args(p, exclude=("rc_equivariant",))  # a DNA strand symmetry
    p.set_defaults(bidirectional="add")
    return p


def run(argv=None) -> int:
    from ..metrics import accuracy_by_group
    from ..training import ClassifierTask, Job, run_training, score_classifier, training_loader

    a = parse_with_recipe(build_parser(), argv)
    train_sources(a)
    if a.train is None:
        raise InputError("no input: pass --train CSV (path,label[,group]) or a folder per label")
    check_ranges(a)
    if a.frontend_norm and a.frontend != "filterbank":
        raise InputError("--frontend-norm acts on filterbank energies",
                         fix="add --frontend filterbank, or drop --frontend-norm")
    init: Optional[Path] = resolve_model_dir(a.init) if a.init else None
    init_extra = model_extra(init) if init else {}
    sample_rate = a.sample_rate or int(init_extra.get("sample_rate", 16000))
    if init and a.sample_rate and a.sample_rate != init_extra.get("sample_rate", a.sample_rate):
        raise InputError(f"--sample-rate {a.sample_rate} differs from the "
                         f"{init_extra['sample_rate']} Hz the --init model was trained at",
                         path=init)
    encoding = init_extra.get("encoding", "waveform") if init else "waveform"
    bidirectional = None if a.causal else a.bidirectional

    labelled, val_clips, how = split_sets(a)
    names = label_names(labelled)
    if len(names) < 2:
        raise InputError(f"the training clips have a single label ({names[0]})",
                         path=", ".join(map(str, a.train)))
    if a.pseudo_balance is not None and not a.unlabelled:
        raise InputError("--pseudo-balance re-weights the labels of --unlabelled recordings, "
                         "and none were given", fix="add --unlabelled INPUT..., or drop it")
    if a.pseudo_balance_by != "all" and a.pseudo_balance is None:
        raise InputError(f"--pseudo-balance-by {a.pseudo_balance_by} says how --pseudo-balance "
                         "groups the clips", fix="add --pseudo-balance, or drop it")
    if a.teacher and not a.unlabelled:
        raise InputError("--teacher labels --unlabelled recordings, and none were given",
                         fix="add --unlabelled INPUT..., or drop --teacher")
    pseudo = pseudo_labelled(a, names, init, labelled, val_clips) if a.unlabelled else None
    train_clips = labelled + (pseudo_labels.kept_clips(pseudo[0], a.pseudo_repeat)
                              if pseudo else [])
    if pseudo:
        pseudo[1]["training_clips"] = len(train_clips)
    num_samples = max(1, int(round(a.seconds * sample_rate)))
    train_base = AudioClips(train_clips, names, num_samples, sample_rate, train=True, seed=a.seed,
                            peak=a.peak, max_seconds=a.max_seconds)
    val_ds = AudioClips(val_clips, names, num_samples, sample_rate, train=False, peak=a.peak,
                        max_seconds=a.max_seconds)
    batches = Batches(encoding)
    val_loader = DataLoader(val_ds, batch_size=max(a.batch_size, 32), collate_fn=batches,
                            num_workers=a.workers)
    val_groups = sorted({c.group for c in val_clips if c.group})
    grouped = how == "group" or len(val_groups) > 1

    def job() -> Job:
        table = a.out / pseudo_labels.TABLE
        if pseudo and not table.is_file():  # RUN's checks have passed: write it before training
            a.out.mkdir(parents=True, exist_ok=True)
            write_csv_atomic(pseudo[0], table)
        shift = int(round(a.shift_seconds * sample_rate))
        augment = dict(shift=shift, gain_db=a.gain_db, speed=a.speed, eq_db=a.eq_db,
                       reverb=a.reverb, babble_snr=a.babble_snr, trim=a.trim,
                       tempo=a.tempo, formant=a.formant, band_limit=a.band_limit)
        train_ds = Augmented(train_base, seed=a.seed, **augment) \
            if any(augment.values()) else train_base
        loader = training_loader(train_ds, a.batch_size, a.seed, shuffle=True, collate_fn=batches,
                                 num_workers=a.workers, drop_last=len(train_ds) > a.batch_size,
                                 persistent_workers=a.workers > 0)
        extra = {"task": "audio-classify", "labels": names, "sample_rate": sample_rate,
                 "seconds": a.seconds, "encoding": encoding, "peak": a.peak}
        config = dict(d_model=a.d_model, n_layer=a.n_layer, d_state=a.d_state, vocab_size=1,
                      **frontend_config(a), num_labels=len(names), pooling=a.pooling, bidirectional=bidirectional,
                      dropout=a.dropout, extra=extra)
        per_clip = num_samples if encoding != "waveform" else -(-num_samples // a.frame_size)
        return Job(ClassifierTask, config, loader, val_loader, init,
                   step_positions=a.batch_size * per_clip)

    def report(model):
        m, pred = score_classifier(model, val_loader, names, a.out)
        cfg = model.config
        fields = {"task": "audio-classify", "labels": names, "sample_rate": sample_rate,
                  "seconds": a.seconds, "encoding": encoding,
                  "split": split_fields(how, labelled, val_clips),
                  "architecture": {"d_model": cfg.d_model, "n_layer": cfg.n_layer,
                                   "d_state": cfg.d_state, "bidirectional": cfg.bidirectional,
                                   "input_type": cfg.input_type,
                                   "frame_size": cfg.frontend.frame_size,
                                   "frontend": cfg.frontend.kind,
                                   "parameters": model.num_parameters()},
                  "model": m, "init": str(init) if init else None}
        if pseudo:
            fields["pseudo_labels"] = pseudo[1]
        val_labels = [train_base.index[c.label] for c in val_clips]
        groups = [c.group for c in val_clips]
        by_group = {"model": accuracy_by_group(pred, val_labels, groups)} if grouped else {}
        if a.baseline == "logmel":
            base_pred = logmel_report(fields, labelled, names, num_samples, sample_rate,
                                      val_ds, a)
            if grouped:
                by_group["baseline"] = accuracy_by_group(base_pred, val_labels, groups)
        if grouped:
            fields["accuracy_by_group"] = by_group
        held = f"; held-out groups {', '.join(val_groups)}" if how == "group" else ""
        lines = [f"held-out ({len(val_clips)} clips{held}): model "
                 + " ".join(f"{k} {v:.4f}" for k, v in m.items())]
        for g, acc in by_group.get("model", {}).items():
            base = f" (baseline {by_group['baseline'][g]:.4f})" if "baseline" in by_group else ""
            lines.append(f"  {g}: model acc {acc:.4f}{base}")
        if "baseline" in fields:
            b = fields["baseline"]
            lines.append(f"baseline {b['name']}: acc {b['acc']:.4f} macro_f1 "
                         f"{b['macro_f1']:.4f} mcc {b['mcc']:.4f}")
        return fields, lines

    return run_training(a, job, report)


# (option, lowest, highest, whether the highest is allowed); None: no bound
RANGES = (("seconds", 0.0, None, False), ("shift_seconds", 0.0, None, True),
          ("gain_db", 0.0, None, True), ("eq_db", 0.0, None, True),
          ("babble_snr", 0.0, None, True), ("speed", 0.0, 0.5, False),
          ("reverb", 0.0, 1.0, True), ("trim", 0.0, 1.0, True), ("tempo", 0.0, 1.0, True),
          ("formant", 0.0, 1.0, True), ("band_limit", 0.0, 1.0, True))


def check_ranges(a) -> None:
    """Each numeric option in its range, or one line naming that option and the range."""
    for name, low, high, closed in RANGES:
        v = getattr(a, name)
        above = low if name == "seconds" else None  # a crop must be longer than 0
        bad = (v <= above) if above is not None else (v < low)
        if high is not None:
            bad = bad or (v > high if closed else v >= high)
        if bad:
            flag = "--" + name.replace("_", "-")
            lo = f"> {low:g}" if above is not None else f">= {low:g}"
            rng = lo if high is None else f"in [{low:g}, {high:g}{']' if closed else ')'}"
            raise InputError(f"out of range: {flag} {rng}, got {v:g}")


def logmel_report(fields, train_clips, names, num_samples, sample_rate, val_ds, a):
    """The log-mel + logistic-regression baseline on the same split (centre crops, no
    augmentation) into ``fields["baseline"]``; returns its held-out predictions."""
    from .baselines import logmel_baseline

    plain = AudioClips(train_clips, names, num_samples, sample_rate, train=False, peak=a.peak,
                       max_seconds=a.max_seconds, probe=False)
    tr = [plain[i] for i in range(len(plain))]
    va = [val_ds[i] for i in range(len(val_ds))]
    fields["baseline"] = logmel_baseline(
        [x["waveform"] for x in tr], [x["label"] for x in tr],
        [x["waveform"] for x in va], [x["label"] for x in va], len(names), sample_rate, a.seed)
    return fields["baseline"].pop("predictions")
