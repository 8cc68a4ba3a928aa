"""What ``seqmamba dna pretrain`` needs beyond the options: the train / held-out split, the
batches of each objective, and the baselines of its report (Markov for next-token models, the
two-sided counts for masked LMs), each fitted on the training intervals and scored on exactly
the held-out positions the model is scored on."""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from ..errors import InputError
from .manifest import load_split
from .two_sided import fold_bases
from .masking import MaskingCollate
from .windows import (POOL, fraction_intervals, read_bed, record_intervals, record_names,
                      subtract)

OBJECTIVES = ("lm", "mlm")


def pretrain_splits(a):
    """(train intervals, held-out intervals, FASTA files) from the command's options, less the
    records ``--exclude-records`` matches."""
    train, val, files = _splits(a)
    if not a.exclude_records:
        return train, val, files
    try:
        pattern = re.compile(a.exclude_records)
    except re.error as e:
        raise InputError(f"--exclude-records {a.exclude_records!r} is not a regular expression "
                         f"({e})", fix="e.g. --exclude-records '_alt$|_random$|chrUn_|chrM'") from None
    train, val = ([iv for iv in ivs if not pattern.search(iv.record)] for ivs in (train, val))
    if not train or not val:
        raise InputError(f"--exclude-records {a.exclude_records!r} leaves no "
                         f"{'training' if not train else 'held-out'} records",
                         fix="match fewer names (the pattern is searched anywhere in a name; "
                             "anchor it with ^ and $)")
    return train, val, files


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
        return load_split(a.manifest, a.split)
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


def check_objective(a) -> None:
    """A next-token model must be causal; a masked LM must read both ways."""
    if a.objective == "lm" and (a.bidirectional or a.rc_equivariant):
        raise InputError("--bidirectional and --rc-equivariant read the sequence from both ends, "
                         "which next-token pretraining cannot use; add --objective mlm")
    if a.objective == "mlm" and not (a.bidirectional or a.rc_equivariant):
        a.bidirectional = "add"  # Caduceus's default: a masked LM reads both directions


def collate_for(objective: str, tok, seed: int, heldout: bool):
    """The DataLoader collate of an objective: plain windows, or masked ones (fixed per
    window; held-out windows with every chosen base hidden)."""
    if objective == "mlm":
        return MaskingCollate(tok.mask_id, tok.acgt_ids, seed, heldout)

    def collate(items):
        return {"input_ids": torch.stack([it["input_ids"] for it in items]),
                "window": [f"{it['record']}:{it['start']}{it['strand']}" for it in items]}
    return collate


def markov_report(models, val_ds, orders) -> dict:
    """Held-out bits per base of Markov orders (``models``: order -> model fitted on the
    training intervals, ``genome_scan.scan_split``), scored on exactly the positions the model
    is scored on: every position t >= 1 of each held-out window, with the order-k model backing
    off to order t where t < k."""
    windows = [val_ds[i]["input_ids"].numpy() for i in range(len(val_ds))]
    out = {}
    for k in orders:
        total, n = models[k].bits(windows)
        for t in range(1, k):  # position t has only t bases of context
            b, c = models[t].bits([w[: t + 1] for w in windows])
            total, n = total + b, n + c
        out[k] = total / n if n else math.nan
    return out


def two_sided_report(counts, val_loader, tokenizer, orders=range(0, 7)) -> dict:
    """Held-out bits per masked base of the two-sided count models (order k: k bases each
    side; ``counts`` fitted on the training intervals by ``genome_scan.scan_split``), scored on
    the held-out loader's masked positions."""
    windows, masked = [], []
    for b in val_loader:
        for ids, labels in zip(b["input_ids"].numpy(), b["labels"].numpy()):
            keep = labels != -100
            windows.append(fold_bases(np.where(keep, labels, ids), tokenizer.acgt_ids))
            masked.append(np.flatnonzero(keep))
    return {k: _bits(counts, windows, masked, k) for k in orders}


def _bits(counts, windows, masked, k) -> float:
    lp, _ = counts.log2_probs(windows, masked, k)
    return float(-lp.mean()) if len(lp) else math.nan
