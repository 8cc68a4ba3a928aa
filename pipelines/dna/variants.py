"""``seqmamba dna score-variants``: variant effects from a DNA model, written into the VCF.

For every ALT allele of every record (multi-allelic records are scored allele by allele), the
reference window of ``--window`` bases centred on the variant is compared with the same
window carrying the allele:

* a language model gives the log-likelihood ratio, ``log P(alt window) - log P(ref window)``
  in nats over every position of the windows (INFO ``SM_LLR``, one value per ALT); an
  RC-equivariant model scores both strands and averages them;
* a classifier gives the change of each class probability, alt minus ref (INFO
  ``SM_D_<label>``).

SNVs and indels are scored (an indel's alt window keeps the same left flank and is cut or
extended on the right to the window's length); symbolic or breakend alleles are left
unscored.  The REF allele is checked against the FASTA: a record whose REF differs is kept,
unscored, with FILTER ``SM_REF_MISMATCH``, counted and listed on stderr.  Windows go through
the model in batches (``--batch-size`` windows at a time).  Scores are appended, batch by
batch, to ``OUT.scores.partial`` (with the model and options beside it): a stopped run,
rerun, scores only what is not there yet.  The output (VCF, .vcf.gz or BCF, by its name) is
then written in a second pass over the input to a temporary file and renamed when complete,
and the partial scores are removed.  VCF reading and writing is pysam's (htslib).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..io.tables import check_outputs
from ..options import add_field
from .variant_scoring import score_variants


def build_parser() -> argparse.ArgumentParser:
    """The options of ``seqmamba dna score-variants``."""
    p = argparse.ArgumentParser(prog="seqmamba dna score-variants",
                                description=__doc__.split("\n")[0])
    add_field(p, "model")
    add_field(p, "fasta", required=True, help="the reference (plain or bgzip)")
    p.add_argument("--vcf", type=Path, required=True, help="VCF or BCF (plain, gzip or bgzip)")
    add_field(p, "out", help=".vcf, .vcf.gz or .bcf")
    add_field(p, "window", help="bases per window (default: the model's training windows, "
                                "else 1024)")
    add_field(p, "batch_size", default=64, help="windows per model call")
    add_field(p, "restart", help="ignore an earlier OUT.scores.partial")
    add_field(p, "device")
    return p


def run(argv=None) -> int:
    """Check the options and the outputs, then score every variant into ``--out``
    (``variant_scoring.score_variants``, which checks the model, the VCF and its contigs);
    the exit code: 0."""
    a = build_parser().parse_args(argv)
    if a.batch_size < 1 or (a.window is not None and a.window < 8):
        raise InputError("--batch-size must be >= 1 and --window >= 8")
    check_outputs([a.out], [a.vcf, a.fasta])
    return score_variants(a.model, a.fasta, a.vcf, a.out, window=a.window,
                          batch_size=a.batch_size, restart=a.restart, device=a.device)
