"""``seqmamba dna <command>``: pretrain, finetune, predict, generate, species, score-variants."""

from __future__ import annotations

from ..subcommands import dispatch

COMMANDS = {
    "pretrain": ("pipelines.dna.pretrain", "next-token pretraining on FASTA genomes"),
    "finetune": ("pipelines.dna.finetune", "sequence classification from labelled TSV"),
    "predict": ("pipelines.dna.predict", "batch prediction on FASTA/TSV files"),
    "generate": ("pipelines.dna.generate", "sample DNA from a pretrained model"),
    "species": ("pipelines.dna.species", "species-of-origin recipe: accuracy by window length"),
    "score-variants": ("pipelines.dna.variants", "variant effects (LLR / class deltas) into a VCF"),
}


def main(argv) -> int:
    return dispatch("dna", COMMANDS, argv)
