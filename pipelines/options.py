"""The options every training command shares, declared once as typed dataclasses.

Each field is one option: its name (``max_steps`` -> ``--max-steps``, and the recipe key
``max_steps``), its type, its default and a one-line help.  ``add_options`` generates the
argparse flags from them, so the training commands cannot drift apart; a command leaves out
the fields it cannot honour (``exclude``) instead of offering them and refusing every value.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional


def opt(default, help: str, **argparse_kw):
    """A field: its default, its one-line help, and argparse extras (choices, metavar, ...)."""
    return field(default=default, metadata={"help": help, **argparse_kw})


@dataclass
class TrainingOptions:
    """How a run trains and where it goes."""

    out: Optional[Path] = opt(None, "run directory", required=True)
    config: Optional[Path] = opt(None, "recipe YAML, or the name of a shipped recipe (e.g. "
                                       "dna_splice): any of these options as keys; the "
                                       "command line wins")
    set: Optional[list] = opt(None, "recipe keys set on the command line, e.g. --set "
                                    "max_steps=500 lr=0.001 (after --config, before the "
                                    "options given as flags)", nargs="+", metavar="KEY=VALUE")
    max_steps: int = opt(1000, "optimizer steps to train")
    batch_size: int = opt(16, "sequences (clips, windows) per step")
    lr: float = opt(2e-3, "peak learning rate (AdamW, warm-up then cosine decay)")
    weight_decay: float = opt(0.1, "AdamW weight decay of the matrices")
    warmup_steps: int = opt(100, "steps of linear learning-rate warm-up")
    val_every: int = opt(200, "validate every N steps")
    seed: int = opt(0, "seed of the initialisation, the batches and the augmentation")
    ema: float = opt(0.0, "keep an exponential moving average of the weights with this decay "
                          "(e.g. 0.995; 0: off), validate and export it: steadier final models")
    resume: bool = opt(False, "continue RUN from its last checkpoint")
    workers: int = opt(0, "DataLoader worker processes")
    no_progress: bool = opt(False, "no progress bar")


@dataclass
class ModelOptions:
    """The backbone a new run builds (ignored with --init or --resume)."""

    d_model: int = opt(128, "hidden width")
    n_layer: int = opt(4, "Mamba blocks")
    d_state: int = opt(16, "SSM state size per channel")
    bidirectional: Optional[str] = opt(None, "combine a forward and a reversed scan (Caduceus's "
                                             "'add' or 'ew_multiply'); default: causal",
                                       choices=["add", "ew_multiply"])
    rc_equivariant: bool = opt(False, "reverse-complement parameter sharing (Caduceus-PS): the "
                                      "same output for a sequence and its reverse complement")
    dropout: float = opt(0.0, "dropout on each block's output and the classifier input")


@dataclass
class HardwareOptions:
    """Where and how the steps run (passed to Lightning's Trainer)."""

    accelerator: str = opt("auto", "cpu, gpu or auto")
    devices: str = opt("auto", "a count, a list such as 0,1, or auto")
    num_nodes: int = opt(1, "machines (DDP)")
    strategy: str = opt("auto", "Lightning strategy, e.g. ddp")
    precision: Optional[str] = opt(None, "e.g. 32-true, bf16-mixed (default: bf16-mixed on GPU, "
                                         "32-true on CPU)")


GROUPS = ((TrainingOptions, "training"), (ModelOptions, "model (ignored with --init or --resume)"),
          (HardwareOptions, "hardware (passed to Lightning)"))


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, cls, title: str,
                exclude: Iterable[str] = ()) -> None:
    """One argparse group ``title`` with a flag per field of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    g = parser.add_argument_group(title)
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        kw = {k: v for k, v in f.metadata.items()}
        t = hints[f.name]
        if t is bool:
            g.add_argument(flag(f.name), action="store_true", **kw)
            continue
        base = next((a for a in typing.get_args(t) if a is not type(None)), t)  # Optional[X]
        if base not in (list, str) or "choices" not in kw:
            kw.setdefault("type", base if base is not list else str)
        g.add_argument(flag(f.name), default=f.default, **kw)


def add_training_options(parser: argparse.ArgumentParser, exclude: Iterable[str] = ()) -> None:
    """The training, model and hardware groups, less the fields in ``exclude``."""
    exclude = set(exclude)
    unknown = exclude - {f.name for cls, _ in GROUPS for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"no such training options: {sorted(unknown)}")
    for cls, title in GROUPS:
        add_options(parser, cls, title, exclude)
