"""``seqmamba audio <command>``: finetune, pretrain, predict, generate."""

from __future__ import annotations

import importlib

COMMANDS = {
    "finetune": ("pipelines.audio.finetune", "clip classification from raw waveforms"),
    "pretrain": ("pipelines.audio.pretrain", "mu-law next-sample pretraining on audio clips"),
    "predict": ("pipelines.audio.predict", "batch prediction on audio files and folders"),
    "generate": ("pipelines.audio.generate", "sample audio from a pretrained model (WAV)"),
}


def usage() -> str:
    lines = ["usage: seqmamba audio <command> [options]   (seqmamba audio <command> -h for help)",
             ""]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"seqmamba audio: unknown command {name!r}\n\n{usage()}")
        return 2
    return importlib.import_module(COMMANDS[name][0]).run(rest)
