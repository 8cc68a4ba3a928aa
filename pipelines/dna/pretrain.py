"""``seqmamba dna pretrain``: next-token or masked-LM pretraining on reference genomes.

``--objective lm`` (default) trains a causal next-token model; ``--objective mlm`` a masked LM
(BERT/Caduceus masking, pipelines/dna/masking.py) that reads both directions
(``--bidirectional add``, the default for mlm) and with ``--rc-equivariant`` is
reverse-complement equivariant (Caduceus-PS).

Held-out data: by default the last ``--val-fraction`` of every record (so E. coli trains on
its first 90% and is scored on the last 10%); or whole records (``--val-records``), or BED
intervals (``--holdout-bed``, removed from training), or a named split of a manifest in
``data_manifests/`` (``--manifest M --split S``).  The report puts the model's held-out bits
per base next to k-th order Markov models fitted on the same training intervals and scored
on the same held-out windows; a masked LM's held-out bits per masked base sits next to
two-sided count models (k bases each side) scored on the same masked positions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch.utils.data import DataLoader

from ..options import add_field, backbone_fields
from ..runs import add_trainer_args, parse_with_recipe
from .pretraining import (OBJECTIVES, check_objective, collate_for, markov_report,
                          pretrain_splits, two_sided_report)
from .tokenizer import DNATokenizer
from .genome_scan import scan_split
from .windows import GenomeWindows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqmamba dna pretrain", description=__doc__.split("\n")[0])
    g = p.add_argument_group("data")
    add_field(g, "fasta", action="append", help="FASTA file (plain or bgzip); repeat for several")
    add_field(g, "seq_len")
    add_field(g, "val_fraction", default=0.1, help="hold out the last fraction of every record")
    add_field(g, "val_records")
    add_field(g, "exclude_records")
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
    add_field(g, "objective", choices=list(OBJECTIVES),
              help="lm: next token (causal); mlm: masked LM (reads both directions)")
    add_trainer_args(p)
    return p


def run(argv=None) -> int:
    from ..training import (Job, LMTask, MaskedLMTask, RankAudit, heldout_bits, masked_bits,
                            run_training, training_loader)

    a = parse_with_recipe(build_parser(), argv)
    check_objective(a)
    mlm = a.objective == "mlm"
    tok = DNATokenizer(keep_case=a.keep_case)
    train_iv, val_iv, files = pretrain_splits(a)
    # every base checked now (not after training), the baselines counted on the way
    counts = scan_split(train_iv, val_iv, tok, a.markov_orders if not mlm else (),
                        two_sided=mlm, progress=not a.no_progress)
    val_ds = GenomeWindows(val_iv, a.seq_len, tok, a.val_windows, seed=a.seed + 10_000,
                           max_n_frac=a.max_n_frac, fixed=True)
    val_loader = DataLoader(val_ds, batch_size=a.batch_size, num_workers=0,
                            collate_fn=collate_for(a.objective, tok, a.seed + 10_000, True))
    task = "dna-mlm" if mlm else "dna-lm"

    def job() -> Job:
        samples = a.train_samples or a.max_steps * a.batch_size
        train_ds = GenomeWindows(train_iv, a.seq_len, tok, samples, seed=a.seed,
                                 rc_prob=0.0 if a.rc_equivariant else a.rc_prob,
                                 max_n_frac=a.max_n_frac)
        loader = training_loader(train_ds, a.batch_size, a.seed, shuffle=False,
                                 num_workers=a.workers, drop_last=True,
                                 collate_fn=collate_for(a.objective, tok, a.seed, False),
                                 persistent_workers=a.workers > 0)
        config = dict(**backbone_fields(a), vocab_size=tok.vocab_size, pad_token_id=tok.pad_id,
                      bidirectional=a.bidirectional, rc_equivariant=a.rc_equivariant,
                      complement_map=tok.complement_map if a.rc_equivariant else None,
                      extra={"task": task, "tokenizer": tok.to_dict(), "seq_len": a.seq_len,
                             "fasta": [Path(f).name for f in files]})
        return Job(MaskedLMTask if mlm else LMTask, config, loader, val_loader,
                   callbacks=[RankAudit(a.audit_dir)] if a.audit_dir else [],
                   step_positions=a.batch_size * a.seq_len)

    def report(model):
        common = {"task": task, "seq_len": a.seq_len, "val_windows": len(val_ds),
                  "train_bases": int(sum(iv.length for iv in train_iv)),
                  "val_bases": int(sum(iv.length for iv in val_iv))}
        if mlm:
            bpb = masked_bits(model, val_loader)
            base = two_sided_report(counts.two_sided, val_loader, tok)
            name, label = "two_sided", "two-sided counts"
        else:
            bpb = heldout_bits(model, val_loader)
            base = markov_report(counts.markov, val_ds, a.markov_orders)
            name, label = "markov", "Markov"
        best_k = min(base, key=base.get)
        fields = {**common, "val_bits_per_base": bpb, f"{name}_bits_per_base": base,
                  f"best_{name}_order": best_k, f"best_{name}_bits_per_base": base[best_k],
                  f"beats_best_{name}": bool(bpb < base[best_k])}
        what = "masked-base bits" if mlm else "bits per base"
        return fields, [f"held-out {what}: model {bpb:.4f} | best {label} (order {best_k}) "
                        f"{base[best_k]:.4f} | order 0 {base.get(0, float('nan')):.4f}"]

    return run_training(a, job, report)
