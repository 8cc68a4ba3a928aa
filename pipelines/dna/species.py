"""``seqmamba dna species``: species of origin from DNA windows, by window length.

The analogue of the Mamba paper's Great Apes task on the five bundled bacterial genomes
(E. coli, S. aureus, H. pylori, V. cholerae, M. tuberculosis; ``data_manifests/genomes.yaml``,
split ``species-80-20``): windows from the first 80% of every record train, windows from the
held-out last 20% test.  One model is trained on windows of mixed lengths (each batch draws one
length from ``--lengths``) and scored at every length, or at ``--test-lengths``; beside it, a
3-mer profile + logistic regression baseline is fitted per length on training windows of that
length.  The model is reverse-complement equivariant by default (a window's species does not
depend on its strand).

Writes RUN/final, RUN/report.json and RUN/accuracy_by_length.csv; prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from seqmamba.atomic import write_csv_atomic

from ..errors import InputError
from ..options import add_field, backbone_fields
from ..runs import add_trainer_args, parse_with_recipe
from .baselines import kmer_features
from .manifest import split_by_label
from .tokenizer import DNATokenizer
from .windows import GenomeWindows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqmamba dna species", description=__doc__.split("\n")[0])
    add_field(p, "manifest", default=Path("genomes.yaml"))
    add_field(p, "split", default="species-80-20", help="split name in --manifest")
    p.add_argument("--lengths", type=int, nargs="+", default=[2 ** k for k in range(6, 13)],
                   help="window lengths to train on (each batch draws one)")
    p.add_argument("--test-lengths", type=int, nargs="+", default=None,
                   help="window lengths to score at (default: --lengths); a length longer than "
                        "every trained one shows how the model carries to longer windows")
    p.add_argument("--test-per-class", type=int, default=200,
                   help="test windows per species and length")
    p.add_argument("--baseline-train-per-class", type=int, default=400)
    p.add_argument("--no-rc", action="store_true", help="a plain (not RC-equivariant) model")
    add_trainer_args(p, exclude=("rc_equivariant",))  # its own --no-rc says it
    # the settings of experiments/results/dna_species_report.json (about 17 min on one core)
    p.set_defaults(d_model=64, n_layer=2, batch_size=16, max_steps=1000, lr=3e-3,
                   warmup_steps=100, val_every=500, ema=0.995)
    return p


class MixedLengthWindows(Dataset):
    """Item i: a window of a random species; every item of batch i // batch_size has the
    same length (drawn from ``lengths``), so batches stack without padding."""

    def __init__(self, per_label, lengths, tok, batch_size, samples, seed, fixed_length=None):
        self.labels = list(per_label)
        self.sets = {(lab, L): GenomeWindows(ivs, L, tok, samples, seed=seed + 7 * j, rc_prob=0.5,
                                             label=j)
                     for j, (lab, ivs) in enumerate(per_label.items()) for L in lengths}
        self.lengths, self.bs, self.samples, self.seed = list(lengths), batch_size, samples, seed
        self.fixed_length, self.epoch = fixed_length, 0

    def set_epoch(self, e):
        self.epoch = e
        for ds in self.sets.values():
            ds.set_epoch(e)

    def __len__(self):
        return self.samples

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, self.epoch, i // self.bs])
        L = self.fixed_length or self.lengths[int(rng.integers(len(self.lengths)))]
        j = int(np.random.default_rng([self.seed, self.epoch, i, 1]).integers(len(self.labels)))
        item = self.sets[(self.labels[j], L)][i]
        return {"input_ids": item["input_ids"], "label": j}


def _collate(items):
    return {"input_ids": torch.stack([it["input_ids"] for it in items]),
            "label": torch.tensor([it["label"] for it in items])}


def fixed_windows(per_label, L, tok, per_class, seed):
    """per_class windows of length L from each label's intervals -> (ids (n, L), labels (n,))."""
    xs, ys = [], []
    for j, (lab, ivs) in enumerate(per_label.items()):
        ds = GenomeWindows(ivs, L, tok, per_class, seed=seed + 1000 * j, fixed=True, label=j)
        xs += [ds[i]["input_ids"] for i in range(per_class)]
        ys += [j] * per_class
    return torch.stack(xs), torch.tensor(ys)


def run(argv=None) -> int:
    from ..training import ClassifierTask, Job, run_training, training_loader

    a = parse_with_recipe(build_parser(), argv)
    tok = DNATokenizer()
    by_label = split_by_label(a.manifest, a.split)
    train = {k: v[0] for k, v in by_label.items()}
    test = {k: v[1] for k, v in by_label.items()}
    names = list(by_label)
    rc = not a.no_rc
    check_lengths(a, train, test)

    def job() -> Job:
        ds = MixedLengthWindows(train, a.lengths, tok, a.batch_size, a.max_steps * a.batch_size,
                                a.seed)
        loader = training_loader(ds, a.batch_size, a.seed, shuffle=False, collate_fn=_collate,
                                 num_workers=a.workers, drop_last=True)
        mid = sorted(a.lengths)[len(a.lengths) // 2]
        val = MixedLengthWindows(test, [mid], tok, 32, 160, a.seed + 99, fixed_length=mid)
        config = dict(**backbone_fields(a),
                      vocab_size=tok.vocab_size, pad_token_id=tok.pad_id, num_labels=len(names),
                      pooling="mean", rc_equivariant=rc, bidirectional=a.bidirectional,
                      complement_map=tok.complement_map if rc else None,
                      extra={"task": "dna-classify", "labels": names,
                             "tokenizer": tok.to_dict(), "pooling": "mean"})
        return Job(ClassifierTask, config, loader,
                   DataLoader(val, batch_size=32, collate_fn=_collate),
                   step_positions=a.batch_size * max(a.lengths))

    def report(model):
        rows = [{**accuracy_at_length(model, Lw, train, test, tok, a), "trained": Lw in a.lengths}
                for Lw in sorted(set(a.test_lengths or a.lengths))]
        write_csv_atomic(rows, a.out / "accuracy_by_length.csv")
        fields = {"task": "species-of-origin", "labels": names, "rc_equivariant": rc,
                  "d_model": a.d_model, "n_layer": a.n_layer, "batch_size": a.batch_size,
                  "lr": a.lr, "ema": a.ema, "test_per_class": a.test_per_class, "seed": a.seed,
                  "arch": a.arch, "parameters": model.num_parameters(),
                  "accuracy_by_length": rows}
        return fields, [f"wrote {a.out / 'accuracy_by_length.csv'}"]

    return run_training(a, job, report)


def check_lengths(a, train: dict, test: dict) -> None:
    """Every length must fit in some interval of every species' training and held-out parts
    (an InputError naming the option otherwise): checked before training, not after it."""
    part, lab, limit = min(((part, lab, max((iv.length for iv in ivs), default=0))
                            for part, by in (("training", train), ("held-out", test))
                            for lab, ivs in by.items()), key=lambda t: t[2])
    for flag, lengths in (("--lengths", a.lengths), ("--test-lengths", a.test_lengths or [])):
        bad = [L for L in lengths if not 0 < L <= limit]
        if bad:
            raise InputError(f"{flag} {bad[0]}: windows must hold 1 to {limit:,} bases (the "
                             f"longest record of {lab}'s {part} part)",
                             fix=f"use lengths of at most {limit:,}")


def accuracy_at_length(model, Lw, train, test, tok, a) -> dict:
    """The model and the 3-mer baseline (fitted on training windows of the same length) on
    the same ``a.test_per_class`` test windows per species of length ``Lw``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = fixed_windows(test, Lw, tok, a.test_per_class, a.seed + 5000)
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 32]).logits.argmax(-1) for i in range(0, len(x), 32)])
    acc = float((pred == y).float().mean())
    xtr, ytr = fixed_windows(train, Lw, tok, a.baseline_train_per_class, a.seed + 9000)
    ftr, fte = kmer_features(list(xtr.numpy())), kmer_features(list(x.numpy()))
    sc = StandardScaler().fit(ftr)
    clf = LogisticRegression(max_iter=3000).fit(sc.transform(ftr), ytr.numpy())
    base = float((clf.predict(sc.transform(fte)) == y.numpy()).mean())
    print(f"length {Lw:>6}: model {acc:.3f}   3-mer + logistic regression {base:.3f}   "
          f"({len(y)} test windows)", flush=True)
    return {"length": Lw, "model_acc": acc, "kmer3_logreg_acc": base, "n_test": len(y)}
