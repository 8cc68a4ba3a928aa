"""``seqmamba dna finetune``: sequence classification from labelled DNA (``--task token``:
a label for every base, from a genome's GFF3; see ``pipelines/dna/genes.py``).

Input: TSV files (``id, label, sequence``) or BED (``chrom start end label [. strand]``) with
``--fasta``.  Without ``--val`` a stratified ``--val-fraction`` of the training file is held
out (seeded).  The report gives accuracy, MCC, macro-F1 and AUROC of the model on the held-out
set next to a logistic-regression baseline fitted on the same split (one-hot for equal-length
sequences, else 3-mer profiles), and a confusion-matrix PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..errors import InputError
from ..options import add_field, backbone_fields
from ..runs import add_pooling_arg, add_trainer_args, parse_with_recipe
from .baselines import logistic_baseline
from .labelled import LabelledSet, pad_collate, read_labelled
from .models import resolve_model_dir, tokenizer_of
from .tokenizer import DNATokenizer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqmamba dna finetune", description=__doc__.split("\n")[0])
    p.add_argument("--task", default="sequence", choices=["sequence", "token"],
                   help="sequence: one label per sequence (--train); token: one label per base "
                        "from --annotation (gene annotation)")
    g = p.add_argument_group("data")
    add_field(g, "train", help="labelled TSV or BED")
    add_field(g, "val", help="held-out TSV or BED")
    add_field(g, "fasta", help="FASTA for BED input, or the genome of --annotation")
    add_field(g, "val_fraction", help="without --val: stratified fraction of --train held out")
    add_field(g, "init", help="pretrained model directory (RUN or RUN/final) to start from")
    add_pooling_arg(g)
    g.add_argument("--rc-augment", action="store_true",
                   help="train on reverse complements too (for strand-symmetric labels)")
    add_field(g, "baseline", choices=["auto", "onehot", "kmer", "cnn", "none"])
    add_field(g, "baseline_steps")
    g = p.add_argument_group("--task token (base-level annotation)")
    g.add_argument("--annotation", type=Path, default=None,
                   help="GFF3 (optionally gzipped) with CDS rows for the --fasta genome")
    add_field(g, "val_records", help="records (chromosomes) held out whole for scoring "
                                     "(several, or comma-separated)")
    add_field(g, "seq_len", default=8192, help="training window (bases)")
    g.add_argument("--eval-seq-len", type=int, default=None,
                   help="window for scoring the held-out records (default --seq-len)")
    g.add_argument("--overlaps", default="error", choices=["error", "mask"],
                   help="bases that overlapping features give two classes: an error, or "
                        "masked out of training and scoring")
    g.add_argument("--class-weights", default="none", choices=["none", "balanced"],
                   help="balanced: weigh the loss by inverse square-root class frequency")
    add_field(g, "val_windows", default=32)
    g.add_argument("--plot-length", type=int, default=30000,
                   help="bases of the held-out stretch drawn in RUN/gene_track.png")
    add_trainer_args(p)
    return p


def _split(examples, fraction, seed):
    from sklearn.model_selection import train_test_split

    labels = [e.label for e in examples]
    idx = np.arange(len(examples))
    try:
        tr, va = train_test_split(idx, test_size=fraction, random_state=seed, stratify=labels)
    except ValueError as e:
        raise InputError(f"cannot hold out a stratified {fraction:.0%}: {e}",
                         fix="pass --val, or lower --val-fraction") from None
    return [examples[i] for i in tr], [examples[i] for i in va]


class _RCAugmented(torch.utils.data.Dataset):
    def __init__(self, base: LabelledSet, tok: DNATokenizer, seed: int):
        self.base, self.tok, self.seed, self.epoch = base, tok, seed, 0

    def set_epoch(self, e):
        self.epoch = e

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        item = dict(self.base[i])
        if np.random.default_rng([self.seed, self.epoch, i]).random() < 0.5:
            item["input_ids"] = self.tok.reverse_complement(item["input_ids"])
        return item


def run(argv=None) -> int:
    from ..training import ClassifierTask, Job, run_training, score_classifier, training_loader

    a = parse_with_recipe(build_parser(), argv)
    if a.task == "token":
        from .genes import run_token

        if a.seq_len < 1 or (a.eval_seq_len is not None and a.eval_seq_len < 1) \
                or a.val_windows < 1 or a.plot_length < 1:
            raise InputError("--seq-len, --eval-seq-len, --val-windows and --plot-length must "
                             "be positive")
        return run_token(a)
    if a.annotation is not None:
        raise InputError("--annotation labels bases: add --task token")
    if a.train is None:
        raise InputError("no input: pass --train FILE (TSV id/label/sequence, or BED with --fasta)")
    init = resolve_model_dir(a.init) if a.init else None
    tok = tokenizer_of(init) if init else DNATokenizer()
    train_ex = read_labelled(a.train, tok, a.fasta)
    if a.val:
        val_ex = read_labelled(a.val, tok, a.fasta)
    else:
        train_ex, val_ex = _split(train_ex, a.val_fraction, a.seed)
    names = sorted({e.label for e in train_ex})
    if len(names) < 2:
        raise InputError(f"the training set has a single label ({names[0]})", path=a.train)
    train_ds = LabelledSet(train_ex, names, a.train)
    val_ds = LabelledSet(val_ex, names, a.val or a.train)
    collate = pad_collate(tok.pad_id)
    val_loader = DataLoader(val_ds, batch_size=max(a.batch_size, 64), collate_fn=collate)

    def train_loader():
        """The training batches in the run's order (the model's and the CNN baseline's)."""
        train_set = _RCAugmented(train_ds, tok, a.seed) if a.rc_augment else train_ds
        return training_loader(train_set, a.batch_size, a.seed, shuffle=True, collate_fn=collate,
                               num_workers=a.workers, drop_last=len(train_ds) > a.batch_size)

    def job() -> Job:
        loader = train_loader()
        extra = {"task": "dna-classify", "labels": names, "tokenizer": tok.to_dict(),
                 "pooling": a.pooling}
        config = dict(**backbone_fields(a),
                      vocab_size=tok.vocab_size, pad_token_id=tok.pad_id, num_labels=len(names),
                      pooling=a.pooling, bidirectional=a.bidirectional,
                      rc_equivariant=a.rc_equivariant,
                      complement_map=tok.complement_map if a.rc_equivariant else None,
                      extra=extra)
        longest = max(len(e.ids) for e in train_ex + val_ex)
        return Job(ClassifierTask, config, loader, val_loader, init,
                   step_positions=a.batch_size * longest)

    def report(model):
        m, _ = score_classifier(model, val_loader, names, a.out)
        fields = {"task": "dna-classify", "labels": names, "train_examples": len(train_ds),
                  "val_examples": len(val_ds), "parameters": model.num_parameters(), "model": m,
                  "init": str(init) if init else None}
        lines = [f"held-out ({len(val_ds)} sequences): model "
                 + " ".join(f"{k} {v:.4f}" for k, v in m.items())]
        if a.baseline == "cnn":
            b = fields["baseline"] = cnn_baseline(model.num_parameters(), train_loader(),
                                                  val_loader, names, tok, a)
            lines.append(f"baseline {b['name']}: acc {b['acc']:.4f} mcc {b['mcc']:.4f}")
        elif a.baseline != "none":
            b = fields["baseline"] = logistic_baseline(train_ex, val_ex, names, a.baseline, a.seed)
            lines.append(f"baseline {b['name']}: acc {b['acc']:.4f} mcc {b['mcc']:.4f}")
        return fields, lines

    return run_training(a, job, report)


def cnn_baseline(target_params: int, loader, val_loader, names, tok, a) -> dict:
    """The one-hot CNN baseline at the model's parameter count, trained on the model's batches
    with its settings, scored on the held-out sequences."""
    from ..training.baseline_fit import train_and_score
    from .baselines import OneHotCNN

    fields, _ = train_and_score(lambda w: OneHotCNN(len(names), tok.symbols, w, a.dropout),
                                target_params, loader, val_loader, a)
    return {"name": f"one-hot CNN ({fields['width']} channels)", **fields}
