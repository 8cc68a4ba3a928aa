"""``seqmamba dna pretrain``: next-token pretraining on reference genomes.

Held-out data: by default the last ``--val-fraction`` of every record (so E. coli trains on
its first 90% and is scored on the last 10%); or whole records (``--val-records``), or BED
intervals (``--holdout-bed``, removed from training), or a named split of a manifest in
``data_manifests/`` (``--manifest M --split S``).  The report puts the model's held-out bits
per base next to k-th order Markov models fitted on the same training intervals and scored
on the same held-out windows.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..errors import InputError
from ..options import add_field
from ..runs import add_trainer_args, parse_with_recipe
from .manifest import load_split
from .markov import MarkovModel
from .tokenizer import DNATokenizer
from .windows import (POOL, GenomeWindows, check_intervals, fraction_intervals, read_bed,
                      record_intervals, record_names, subtract)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqmamba dna pretrain", description=__doc__.split("\n")[0])
    g = p.add_argument_group("data")
    add_field(g, "fasta", action="append", help="FASTA file (plain or bgzip); repeat for several")
    add_field(g, "seq_len")
    add_field(g, "val_fraction", default=0.1, help="hold out the last fraction of every record")
    add_field(g, "val_records")
    g.add_argument("--holdout-bed", type=Path, default=None, help="hold out these BED intervals")
    add_field(g, "manifest")
    add_field(g, "split", help="split name in --manifest")
    add_field(g, "train_samples")
    add_field(g, "val_windows")
    g.add_argument("--rc-prob", type=float, default=0.5, help="reverse-complement augmentation")
    g.add_argument("--max-n-frac", type=float, default=0.1)
    g.add_argument("--keep-case", action="store_true", help="keep soft-masked lowercase apart")
    g.add_argument("--markov-orders", type=int, nargs="+", default=list(range(0, 9)))
    g.add_argument("--audit-dir", type=Path, default=None, help=argparse.SUPPRESS)
    # next-token prediction needs a causal model (masked-LM pretraining is not in yet)
    add_trainer_args(p, exclude=("bidirectional", "rc_equivariant"))
    return p


def _splits(a):
    chosen = [opt for opt, v in (("--manifest", a.manifest), ("--holdout-bed", a.holdout_bed),
                                 ("--val-records", a.val_records)) if v]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)} each choose the held-out data; pass one of them")
    if a.manifest and a.fasta:
        raise InputError("--manifest names its own FASTA files; drop --fasta (or --manifest)")
    if a.split and not a.manifest:
        raise InputError("--split names a split of a --manifest; pass --manifest too")
    if not 0 < a.val_fraction < 1:
        raise InputError(f"--val-fraction must be in (0, 1), got {a.val_fraction}")
    if a.seq_len < 2 or a.val_windows < 1:
        raise InputError("--seq-len must be at least 2 and --val-windows at least 1")
    if a.manifest:
        if not a.split:
            raise InputError("--manifest needs --split NAME")
        train, val, files = load_split(a.manifest, a.split)
        return train, val, files
    if not a.fasta:
        raise InputError("no input: pass --fasta FILE (or --manifest M --split S)")
    files = [str(f) for f in a.fasta]
    for f in files:
        POOL.get(f)  # sniff and index now, so a bad file fails before anything is written
    if a.holdout_bed:
        val = read_bed(a.holdout_bed, files)
        return subtract(record_intervals(files), val), val, files
    if a.val_records:
        names = record_names(a.val_records)
        return (record_intervals(files, exclude=names), record_intervals(files, records=names),
                files)
    return (fraction_intervals(files, 0.0, 1.0 - a.val_fraction),
            fraction_intervals(files, 1.0 - a.val_fraction, 1.0), files)


def _collate(items):
    return {"input_ids": torch.stack([it["input_ids"] for it in items]),
            "window": [f"{it['record']}:{it['start']}{it['strand']}" for it in items]}


def markov_report(train_iv, val_ds, orders, tokenizer) -> dict:
    """Held-out bits per base of Markov orders, fitted on the training intervals and scored
    on exactly the positions the model is scored on: every position t >= 1 of each held-out
    window, with the order-k model backing off to order t where t < k."""
    train = [tokenizer.encode(POOL.get(iv.path).fetch(iv.record, iv.start, iv.end)).numpy()
             for iv in train_iv]
    windows = [val_ds[i]["input_ids"].numpy() for i in range(len(val_ds))]
    models = {k: MarkovModel(k).fit(train) for k in range(max(orders) + 1)}
    out = {}
    for k in orders:
        total, n = models[k].bits(windows)
        for t in range(1, k):  # position t has only t bases of context
            b, c = models[t].bits([w[: t + 1] for w in windows])
            total, n = total + b, n + c
        out[k] = total / n if n else math.nan
    return out


def run(argv=None) -> int:
    from ..training import Job, LMTask, RankAudit, heldout_bits, run_training, training_loader

    a = parse_with_recipe(build_parser(), argv)
    tok = DNATokenizer(keep_case=a.keep_case)
    train_iv, val_iv, files = _splits(a)
    check_intervals(train_iv + val_iv, tok)  # a bad character fails now, not after training
    val_ds = GenomeWindows(val_iv, a.seq_len, tok, a.val_windows, seed=a.seed + 10_000,
                           max_n_frac=a.max_n_frac, fixed=True)
    val_loader = DataLoader(val_ds, batch_size=a.batch_size, num_workers=0, collate_fn=_collate)

    def job() -> Job:
        samples = a.train_samples or a.max_steps * a.batch_size
        train_ds = GenomeWindows(train_iv, a.seq_len, tok, samples, seed=a.seed,
                                 rc_prob=a.rc_prob, max_n_frac=a.max_n_frac)
        loader = training_loader(train_ds, a.batch_size, a.seed, shuffle=False,
                                 num_workers=a.workers, collate_fn=_collate, drop_last=True,
                                 persistent_workers=a.workers > 0)
        config = dict(d_model=a.d_model, n_layer=a.n_layer, d_state=a.d_state,
                      vocab_size=tok.vocab_size, pad_token_id=tok.pad_id, dropout=a.dropout,
                      extra={"task": "dna-lm", "tokenizer": tok.to_dict(), "seq_len": a.seq_len,
                             "fasta": [Path(f).name for f in files]})
        return Job(LMTask, config, loader, val_loader,
                   callbacks=[RankAudit(a.audit_dir)] if a.audit_dir else [],
                   step_positions=a.batch_size * a.seq_len)

    def report(model):
        bpb = heldout_bits(model, val_loader)
        markov = markov_report(train_iv, val_ds, a.markov_orders, tok)
        best_k = min(markov, key=markov.get)
        fields = {"task": "dna-lm", "seq_len": a.seq_len, "val_windows": len(val_ds),
                  "val_bits_per_base": bpb, "markov_bits_per_base": markov,
                  "best_markov_order": best_k, "best_markov_bits_per_base": markov[best_k],
                  "beats_best_markov": bool(bpb < markov[best_k]),
                  "train_bases": int(sum(iv.length for iv in train_iv)),
                  "val_bases": int(sum(iv.length for iv in val_iv))}
        return fields, [f"held-out bits per base: model {bpb:.4f} | best Markov (order {best_k}) "
                        f"{markov[best_k]:.4f} | order 0 {markov.get(0, float('nan')):.4f}"]

    return run_training(a, job, report)
