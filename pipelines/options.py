"""Every option more than one command takes, declared once as a field of a typed dataclass.

Each field is one option: its name (``max_steps`` -> ``--max-steps``, and the recipe key
``max_steps``), its type, its default and a one-line help.  ``add_options`` generates the
argparse flags from them, so commands cannot drift apart on a shared option; a command leaves
out the fields it cannot honour (``exclude``) instead of offering them and refusing every
value, and may give a field its own default, help wording, choices or arity (``use``), never
another type.  A field name belongs to one dataclass only (tests/test_options.py).
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
class CommonOptions:
    """Options of many commands, with one meaning each."""

    out: Optional[Path] = opt(None, "where the command writes (a run directory when training)",
                              required=True)
    model: Optional[Path] = opt(None, "the model: RUN directory or RUN/final", required=True)
    device: str = opt("cpu", "torch device: cpu, cuda, cuda:1, ...")
    seed: int = opt(0, "random seed (initialisation, batches, augmentation, sampling)")
    batch_size: int = opt(16, "sequences (windows, clips) per step or model call")
    no_progress: bool = opt(False, "no progress bar")
    restart: bool = opt(False, "ignore an earlier OUT.partial and start over")
    track: Optional[Path] = opt(None, "per-position (per-time) scores along each input")
    window: Optional[int] = opt(None, "bases per window")


@dataclass
class DataOptions:
    """What a training command reads and how it holds data out."""

    train: Optional[Path] = opt(None, "the labelled training set")
    val: Optional[Path] = opt(None, "held-out set (default: split off the training set)")
    fasta: Optional[Path] = opt(None, "FASTA file (plain or bgzip)")
    manifest: Optional[Path] = opt(None, "data manifest YAML")
    split: Optional[str] = opt(None, "the held-out split: a split named in --manifest (DNA), or "
                                     "how clips are held out (audio)")
    val_fraction: float = opt(0.2, "without --val: the fraction held out")
    val_records: Optional[str] = opt(None, "hold out these records (chromosomes) whole",
                                     nargs="+")
    exclude_records: Optional[str] = opt(
        None, "leave out the records whose name matches this regular expression (e.g. hg38's "
              "alternates, unplaced contigs and mitochondrion: '_alt$|_random$|chrUn_|chrM')")
    seq_len: int = opt(1024, "training window (positions)")
    train_samples: Optional[int] = opt(None, "windows per epoch (default: max_steps x batch "
                                             "size)")
    val_windows: int = opt(64, "held-out windows scored at each validation")
    init: Optional[Path] = opt(None, "model to start from (RUN or RUN/final)")
    baseline: str = opt("auto", "the classic baseline fitted on the same split")
    baseline_steps: Optional[int] = opt(None, "steps of the --baseline cnn network (default: "
                                              "--max-steps); the report's step_seconds give "
                                              "the count at equal training time")
    objective: str = opt("lm", "what pretraining predicts")
    sample_rate: Optional[int] = opt(None, "audio: clips are resampled to this rate (Hz)")
    seconds: float = opt(1.0, "audio: clip length trained on (crop or pad)")
    max_seconds: Optional[float] = opt(None, "audio: a longer file is an error")


@dataclass
class SamplingOptions:
    """How ``generate`` samples from a language model."""

    prompt: Optional[str] = opt(None, "what to continue")
    temperature: float = opt(1.0, "softmax temperature (lower: more likely tokens)")
    top_k: int = opt(0, "sample among the k likeliest tokens (0: all)")
    top_p: float = opt(1.0, "sample among the likeliest tokens holding this much probability")


@dataclass
class TrainingOptions:
    """How a run trains."""

    config: Optional[Path] = opt(None, "recipe YAML, or the name of a shipped recipe (e.g. "
                                       "dna_splice): any of these options as keys; the "
                                       "command line wins")
    set: Optional[list] = opt(None, "recipe keys set on the command line, e.g. --set "
                                    "max_steps=500 lr=0.001 (after --config, before the "
                                    "options given as flags)", nargs="+", metavar="KEY=VALUE")
    max_steps: int = opt(1000, "optimizer steps to train")
    lr: float = opt(2e-3, "peak learning rate (AdamW, warm-up then cosine decay)")
    weight_decay: float = opt(0.1, "AdamW weight decay of the matrices")
    warmup_steps: int = opt(100, "steps of linear learning-rate warm-up")
    val_every: int = opt(200, "validate every N steps")
    ema: float = opt(0.0, "keep an exponential moving average of the weights with this decay "
                          "(e.g. 0.995; 0: off), validate and export it: steadier final models")
    resume: bool = opt(False, "continue RUN from its last checkpoint")
    workers: int = opt(0, "DataLoader worker processes")


@dataclass
class ModelOptions:
    """The backbone a new run builds (ignored with --init or --resume)."""

    arch: str = opt("mamba", "the blocks: Mamba, Mamba-2 (SSD: a decay per head, larger "
                             "states), or the Mamba paper's Transformer++ baseline (RoPE, "
                             "SwiGLU)", choices=["mamba", "mamba2", "transformer"])
    d_model: int = opt(128, "hidden width")
    n_layer: int = opt(4, "blocks")
    d_state: int = opt(16, "SSM state size per channel (Mamba)")
    n_head: int = opt(4, "heads (transformer)")
    head_dim: int = opt(64, "channels per head (mamba2)")
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
CATALOGUE = (CommonOptions, DataOptions, SamplingOptions, TrainingOptions, ModelOptions,
             HardwareOptions)
# what a command may set for its use of a shared field (never its type)
ADJUSTABLE = {"default", "help", "choices", "required", "nargs", "action", "metavar"}
# the training commands' own use of the common fields
TRAINING_COMMON = ("out", "seed", "batch_size", "no_progress")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _field(name: str):
    """(dataclass, field, type) of the catalogue field ``name``."""
    for cls in CATALOGUE:
        for f in dataclasses.fields(cls):
            if f.name == name:
                t = typing.get_type_hints(cls)[name]
                return cls, f, next((a for a in typing.get_args(t) if a is not type(None)), t)
    raise KeyError(f"no option {name!r} in pipelines.options")


def add_field(group, name: str, **use) -> None:
    """The option of catalogue field ``name`` in ``group``, with this command's ``use``
    (keys of ADJUSTABLE)."""
    bad = set(use) - ADJUSTABLE
    if bad:
        raise ValueError(f"{name}: a command may not change {sorted(bad)} of a shared option")
    _, f, base = _field(name)
    kw = {"default": f.default, **f.metadata, **use}
    if base is bool and kw.get("action", "store_true") == "store_true":
        kw.pop("default")
        kw["action"] = "store_true"
    elif "choices" not in kw or base is not str:
        kw["type"] = base if base is not list else str
    group.add_argument(flag(name), **kw)


def add_options(parser: argparse.ArgumentParser, cls, title: str,
                exclude: Iterable[str] = (), group=None) -> None:
    """A flag per field of the dataclass ``cls`` in the argparse group ``title``."""
    g = group if group is not None else parser.add_argument_group(title)
    for f in dataclasses.fields(cls):
        if f.name not in exclude:
            add_field(g, f.name)


def add_training_options(parser: argparse.ArgumentParser, exclude: Iterable[str] = ()) -> None:
    """The training, model and hardware groups (with --out, --seed, --batch-size and
    --no-progress), less the fields in ``exclude``."""
    exclude = set(exclude)
    known = {f.name for cls, _ in GROUPS for f in dataclasses.fields(cls)} | set(TRAINING_COMMON)
    if exclude - known:
        raise ValueError(f"no such training options: {sorted(exclude - known)}")
    for cls, title in GROUPS:
        g = parser.add_argument_group(title)
        if cls is TrainingOptions:
            add_field(g, "out", help="run directory")
            for name in TRAINING_COMMON[1:]:
                if name not in exclude:
                    add_field(g, name)
        add_options(parser, cls, title, exclude, group=g)


def add_renamed(group, old: str, new: str, meaning: str, elsewhere: str) -> None:
    """An option's earlier spelling, renamed because the name means ``elsewhere`` in other
    commands: hidden from --help, and given, one line naming the new spelling (exit 2)."""
    from .errors import InputError

    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            raise InputError(f"{parser.prog}: {old} is now {new} ({meaning}; {old} is "
                             f"{elsewhere} elsewhere)", fix=f"write {new} {values}")

    group.add_argument(old, action=Renamed, help=argparse.SUPPRESS)


def check_range(a, name: str, low=None, high=None, low_open: bool = False,
                high_open: bool = False, optional: bool = False) -> None:
    """The option ``name`` of the parsed ``a`` in its range, or one line naming that option,
    its range and the value given (``optional``: None is allowed).  One option a message, so a
    user is never left to guess which of several was wrong."""
    from .errors import InputError

    v = getattr(a, name)
    if v is None and optional:
        return
    bad = v is None or (low is not None and (v <= low if low_open else v < low)) \
        or (high is not None and (v >= high if high_open else v > high))
    if bad:
        if high is None:
            rng = f"> {low:g}" if low_open else f">= {low:g}"
        elif low is None:
            rng = f"< {high:g}" if high_open else f"<= {high:g}"
        else:
            rng = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise InputError(f"out of range: {flag(name)} {rng}, got {v}")


def backbone_fields(a) -> dict:
    """The MambaConfig fields every command sets the same way from ``ModelOptions``
    (bidirectional and rc_equivariant depend on the task and are set by each command); a
    transformer trained on windows of --seq-len attends that far when it predicts."""
    out = {name: getattr(a, name) for name in ("arch", "d_model", "n_layer", "d_state",
                                               "n_head", "head_dim", "dropout")}
    if a.arch == "transformer" and getattr(a, "seq_len", None):
        out["attn_window"] = a.seq_len  # what a causal transformer sees when it predicts
    return out
