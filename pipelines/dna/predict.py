"""``seqmamba dna predict``: batch prediction on FASTA (and TSV) files.

One output row per record: for a classifier the predicted label and the probability of every
class; for a pretrained language model the record's bits per base.  Records are read and run
in pieces of ``--chunk-size`` bases with the model's state carried between pieces, so a whole
chromosome goes through in bounded memory (causal models; a bidirectional model needs the
whole record at once).  ``--track`` writes per-position scores as bedGraph (classifier: the
probability of ``--track-class`` read at each position; language model: the bits spent on
each base), averaged over ``--track-bin`` bases; ``--embed`` writes mean-pooled embeddings.
A base-level annotation model (``dna finetune --task token``) gives one row per record with
the fraction of bases in each class, a bigWig per class with ``--track x.bw``, and the
predicted segments (CDS per strand, introns, UTRs) as GFF3 or BED with ``--segments``; a
bidirectional one runs in overlapping windows (``--window``), block by block, so memory stays
bounded on any record.

Robustness: a record that fails (e.g. an unexpected character) is reported on stderr and in
``OUT.errors.tsv`` and the others are still predicted; exit code 2 then.  Rows are appended to
``OUT.partial`` as they are done and renamed to ``OUT`` at the end, so the output is never half
written; rerunning the same command continues from ``OUT.partial``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..io.tables import OutputLock, check_outputs
from ..options import add_field, check_range
from .inference import load_model, predict_files


def build_parser() -> argparse.ArgumentParser:
    """The options of ``seqmamba dna predict``."""
    p = argparse.ArgumentParser(prog="seqmamba dna predict", description=__doc__.split("\n")[0])
    p.add_argument("inputs", nargs="+", type=Path, help="FASTA (plain/bgzip) or TSV files")
    add_field(p, "model")
    add_field(p, "out", help="predictions (.tsv or .csv)")
    add_field(p, "track", help="per-position scores: .bedgraph, or .bw (bigWig, for IGV/JBrowse)")
    p.add_argument("--track-class", default=None, help="class whose probability the track shows "
                                                       "(default: the last label)")
    p.add_argument("--track-bin", type=int, default=1, help="bases per bedGraph interval")
    p.add_argument("--embed", type=Path, default=None, help="pooled embeddings (.npz)")
    p.add_argument("--embed-window", type=int, default=None,
                   help="--embed: also mean embeddings of every N-base window, with their "
                        "record, start and end (for clustering regions)")
    p.add_argument("--segments", type=Path, default=None,
                   help="annotation models: predicted segments as .gff3 or .bed")
    add_field(p, "window", help="annotation models: window for bidirectional ones (default: "
                                "twice the training window)")
    p.add_argument("--chunk-size", type=int, default=1 << 16, help="bases per piece")
    p.add_argument("--max-length", type=int, default=None,
                   help="use only the first N bases of each record")
    add_field(p, "restart")
    p.add_argument("--save-every", type=float, default=60.0,
                   help="seconds between saves of a long record's progress (its carried state), "
                        "so a stopped run resumes inside the record (0: after every chunk)")
    add_field(p, "no_progress")
    add_field(p, "device")
    return p


def run(argv=None) -> int:
    """Check the options and the outputs, load the model, and predict every input under a
    lock on ``--out`` (``inference.predict_files``); the exit code: 0, or 2 when an input
    failed."""
    a = build_parser().parse_args(argv)
    for name in ("chunk_size", "track_bin", "max_length"):
        check_range(a, name, 1, optional=name == "max_length")
    if a.embed_window is not None and (a.embed_window < 1 or a.embed is None):
        raise InputError("--embed-window takes a positive number of bases, with --embed FILE")
    check_range(a, "window", 1, optional=True)
    check_outputs([a.out, a.track, a.embed, a.segments], a.inputs)
    model, task, tok = load_model(a.model, a.device)
    if a.segments is not None and task != "dna-token":
        raise InputError("--segments is for base-level annotation models (dna finetune --task "
                         "token)", path=a.model)
    if task == "dna-mlm" and (a.track or not a.embed):
        raise InputError("a masked LM gives embeddings, not per-record or per-base scores",
                         path=a.model, fix="pass --embed OUT.npz (and no --track); score "
                                           "variants with dna score-variants")
    lock = OutputLock(a.out, "table")
    try:
        return predict_files(a, model, task, tok)
    finally:
        lock.release()
