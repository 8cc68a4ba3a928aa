"""``seqmamba dna <command>``: pretrain, finetune, predict, generate."""

from __future__ import annotations

import importlib

COMMANDS = {
    "pretrain": ("pipelines.dna.pretrain", "next-token pretraining on FASTA genomes"),
    "finetune": ("pipelines.dna.finetune", "sequence classification from labelled TSV"),
    "predict": ("pipelines.dna.predict", "batch prediction on FASTA/TSV files"),
    "generate": ("pipelines.dna.generate", "sample DNA from a pretrained model"),
    "species": ("pipelines.dna.species", "species-of-origin recipe: accuracy by window length"),
}


def usage() -> str:
    lines = ["usage: seqmamba dna <command> [options]   (seqmamba dna <command> -h for help)", ""]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"seqmamba dna: unknown command {name!r}\n\n{usage()}")
        return 2
    return importlib.import_module(COMMANDS[name][0]).run(rest)
