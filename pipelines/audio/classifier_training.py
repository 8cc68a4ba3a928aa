"""What ``seqmamba audio finetune`` runs: clip classifiers trained from raw waveforms.

``train_classifier(a)`` takes the parsed options of ``audio finetune`` (after the option checks
of its ``run``) and trains, scores and writes RUN: the held-out split (``split_sets``), the
pseudo-labelled clips of ``--unlabelled`` (``pseudo_labelled``), the batches the model reads
(``Batches``: input_ids (batch, samples), label (batch,)) and the log-mel +
logistic-regression baseline of the report (``logmel_report``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from torch.utils.data import DataLoader

from seqmamba.atomic import write_csv_atomic

from ..options import backbone_fields
from ..errors import InputError
from .args import frontend_config
from . import pseudo_labels
from .augment import Augmented
from .datasets import (AudioClips, collate, joined_clip_sets, label_names, read_clips,
                       split_clips, split_fields, split_method)
from .models import encode_input, model_extra, resolve_model_dir

# ---------------------------------------------------------------- data

class Batches:
    """collate -> the batch a ClassifierTask reads: input_ids (batch, samples) (the waveform,
    float32, or its mu-law class ids, int64, for ``encoding`` "mulaw8"), label (batch,) int64."""

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


# ---------------------------------------------------------------- training

def train_classifier(a) -> int:
    """Train, score and write RUN for the parsed options ``a`` of ``audio finetune`` (checked
    by its ``run``); the exit code of ``run_training``.  Bad input (``--init``, the clips, the
    ``--pseudo-*`` options) is one InputError, raised before RUN is made."""
    from ..metrics import accuracy_by_group
    from ..training import ClassifierTask, Job, run_training, score_classifier, training_loader

    init: Optional[Path] = resolve_model_dir(a.init) if a.init else None
    init_extra = model_extra(init) if init else {}
    sample_rate = a.sample_rate or int(init_extra.get("sample_rate", 16000))
    if init and a.sample_rate and a.sample_rate != init_extra.get("sample_rate", a.sample_rate):
        raise InputError(f"--sample-rate {a.sample_rate} differs from the "
                         f"{init_extra['sample_rate']} Hz the --init model was trained at",
                         path=init)
    encoding = init_extra.get("encoding", "waveform") if init else "waveform"
    bidirectional = None if a.causal else a.bidirectional
    if a.baseline == "cnn" and encoding != "waveform":
        raise InputError("--baseline cnn reads waveforms, and the --init model reads mu-law "
                         "samples", path=init, fix="use --baseline logmel or none")

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

    def train_loader() -> DataLoader:
        """The augmented training batches, in the run's order (the model's and the CNN
        baseline's)."""
        shift = int(round(a.shift_seconds * sample_rate))
        augment = dict(shift=shift, gain_db=a.gain_db, speed=a.speed, eq_db=a.eq_db,
                       reverb=a.reverb, babble_snr=a.babble_snr, trim=a.trim,
                       tempo=a.tempo, formant=a.formant, band_limit=a.band_limit)
        train_ds = Augmented(train_base, seed=a.seed, **augment) \
            if any(augment.values()) else train_base
        return training_loader(train_ds, a.batch_size, a.seed, shuffle=True, collate_fn=batches,
                               num_workers=a.workers, drop_last=len(train_ds) > a.batch_size,
                               persistent_workers=a.workers > 0)

    def job() -> Job:
        table = a.out / pseudo_labels.TABLE
        if pseudo and not table.is_file():  # RUN's checks have passed: write it before training
            a.out.mkdir(parents=True, exist_ok=True)
            write_csv_atomic(pseudo[0], table)
        loader = train_loader()
        extra = {"task": "audio-classify", "labels": names, "sample_rate": sample_rate,
                 "seconds": a.seconds, "encoding": encoding, "peak": a.peak}
        config = dict(**backbone_fields(a), vocab_size=1,
                      **frontend_config(a), num_labels=len(names), pooling=a.pooling, bidirectional=bidirectional,
                      extra=extra)
        per_clip = num_samples if encoding != "waveform" else -(-num_samples // a.frame_size)
        return Job(ClassifierTask, config, loader, val_loader, init,
                   step_positions=a.batch_size * per_clip)

    def report(model):
        m, probs = score_classifier(model, val_loader, names, a.out)
        pred = probs.argmax(-1)
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
        from . import run_options, voice_check  # read by audio predict's check and audio adapt
        fields[voice_check.FIELD] = voice_check.reference(probs,
                                                          [c.label for c in labelled], names)
        fields[run_options.FIELD] = run_options.recorded(a)
        if pseudo:
            fields["pseudo_labels"] = pseudo[1]
        val_labels = [train_base.index[c.label] for c in val_clips]
        groups = [c.group for c in val_clips]
        by_group = {"model": accuracy_by_group(pred, val_labels, groups)} if grouped else {}
        if a.baseline == "logmel":
            base_pred = logmel_report(fields, labelled, names, num_samples, sample_rate,
                                      val_ds, a)
        elif a.baseline == "cnn":
            base_pred = cnn_report(fields, model.num_parameters(), train_loader(), val_loader,
                                   names, sample_rate, a)
        if grouped and a.baseline != "none":
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


def logmel_report(fields, train_clips, names, num_samples, sample_rate, val_ds, a):
    """The log-mel + logistic-regression baseline on the same split (centre crops of
    ``num_samples``, waveforms (num_samples,) float32, no augmentation) into
    ``fields["baseline"]``; returns its held-out predictions, one class index per clip of
    ``val_ds``."""
    from .baselines import logmel_baseline

    plain = AudioClips(train_clips, names, num_samples, sample_rate, train=False, peak=a.peak,
                       max_seconds=a.max_seconds, probe=False)
    tr = [plain[i] for i in range(len(plain))]
    va = [val_ds[i] for i in range(len(val_ds))]
    fields["baseline"] = logmel_baseline(
        [x["waveform"] for x in tr], [x["label"] for x in tr],
        [x["waveform"] for x in va], [x["label"] for x in va], len(names), sample_rate, a.seed)
    return fields["baseline"].pop("predictions")


def cnn_report(fields, target_params: int, loader, val_loader, names, sample_rate, a):
    """The log-mel CNN baseline at the model's parameter count, trained on the model's batches
    with its settings, scored on the held-out clips into ``fields["baseline"]``; returns its
    held-out predictions, one class index per clip."""
    from ..training.baseline_fit import train_and_score
    from .baselines import LogMelResNet

    b, probs = train_and_score(lambda w: LogMelResNet(len(names), sample_rate, w, a.dropout),
                               target_params, loader, val_loader, a)
    fields["baseline"] = {"name": f"log-mel res8-like CNN ({b['width']} channels)", **b}
    return probs.argmax(-1)
