"""``seqmamba audio pretrain``: self-supervised pretraining on audio clips.

``--objective mulaw`` (the only one) trains a causal language model of the samples: every clip is read mono at ``--sample-rate`` and mapped to 8-bit mu-law classes (256
tokens, silence = 128), as in SaShiMi and the Mamba paper's audio models; the model learns to predict
each sample from the ones before it.  Training draws random crops of ``--seq-len`` samples
(clips picked in proportion to their length; a clip shorter than the crop is masked after its
end).  Held out: the clips of whole groups when the manifest has a group column (speakers,
accents), else a random ``--val-fraction`` of the clips, or ``--val`` clips.  The report gives
held-out bits per sample (loss / ln 2; 8 bits = a uniform guess) beside order-0 and order-1
Markov models of the mu-law classes fitted on the same training clips.  (Masked-frame
pretraining was tried and removed: classifiers started from it did worse than from scratch.)

Input: a CSV manifest (path,label[,split][,group]; labels are not used), a folder holding
``manifest.csv``, or any folder of .wav/.flac files (searched recursively).
"""

from __future__ import annotations

import argparse

from ..errors import InputError
from ..options import add_field
from ..runs import add_trainer_args, parse_with_recipe
from .args import add_clip_reading_args, add_clip_set_args, train_sources
from .mulaw_data import train_mulaw_lm


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqmamba audio pretrain", description=__doc__.split("\n")[0])
    g = p.add_argument_group("data")
    add_clip_set_args(g, "folder of .wav/.flac (recursive), or CSV manifest path,label[,group]")
    add_field(g, "seq_len", default=4096, help="samples per training crop")
    add_field(g, "sample_rate", default=16000)
    add_clip_reading_args(g)
    add_field(g, "train_samples", help="crops per epoch (default: max_steps x batch size)")
    add_field(g, "val_windows", help="held-out windows of --seq-len scored (0: all)")
    g = p.add_argument_group("objective")
    add_field(g, "objective", default="mulaw", choices=["mulaw"],
              help="mulaw: next-sample prediction (causal)")
    add_trainer_args(p, exclude=("bidirectional", "rc_equivariant"))  # causal, not DNA
    p.set_defaults(d_model=64, n_layer=4)
    return p


def run(argv=None) -> int:
    a = parse_with_recipe(build_parser(), argv)
    train_sources(a)
    if a.train is None:
        raise InputError("no input: pass --train FOLDER (of .wav/.flac) or a CSV manifest")
    if a.seq_len < 2 or a.sample_rate < 1:
        raise InputError("--seq-len must be at least 2 and --sample-rate positive")
    return train_mulaw_lm(a)
