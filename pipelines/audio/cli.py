"""``seqmamba audio <command>``: finetune, pretrain, predict, generate."""

from __future__ import annotations

from ..subcommands import dispatch

COMMANDS = {
    "finetune": ("pipelines.audio.finetune", "clip classification from raw waveforms"),
    "pretrain": ("pipelines.audio.pretrain", "self-supervised pretraining on audio clips (mu-law "
                                          "next sample, or masked frames)"),
    "predict": ("pipelines.audio.predict", "batch prediction on audio files and folders"),
    "generate": ("pipelines.audio.generate", "sample audio from a pretrained model (WAV)"),
}


def main(argv) -> int:
    return dispatch("audio", COMMANDS, argv)
