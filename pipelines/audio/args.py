"""Command-line arguments shared by the audio commands that read labelled clip sets."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..options import add_field
from .io import DEFAULT_MAX_SECONDS


def add_clip_set_args(g: argparse._ArgumentGroup, train_help: str) -> None:
    """--train/--val and, without --val, how the held-out clips are chosen (split_sets)."""
    add_field(g, "train", nargs="+", help=train_help + "; several are joined into one set")
    add_field(g, "val", help="held-out clips (CSV or folder)")
    add_field(g, "split", default="auto", choices=["auto", "column", "group", "stratified"],
              help="without --val: how to hold clips out (auto: the split column, else groups, "
                   "else stratified by label)")
    add_field(g, "val_fraction", default=0.25,
              help="without --val: fraction of the groups (or of each label) held out")
    g.add_argument("--val-groups", nargs="+", default=None, help="hold out these groups")


def add_clip_reading_args(g: argparse._ArgumentGroup) -> None:
    """How each file is read: level and the longest file accepted."""
    g.add_argument("--peak", type=float, default=None,
                   help="scale each clip down to this peak (default: as recorded)")
    add_max_seconds(g)


def add_max_seconds(g, help: str = "a longer file is an error") -> None:
    """--max-seconds: the longest file read (a longer one is an error, not hours of audio)."""
    add_field(g, "max_seconds", default=DEFAULT_MAX_SECONDS, help=help)


def add_frontend_args(g: argparse._ArgumentGroup) -> None:
    """How a waveform model turns samples into positions."""
    g.add_argument("--frame-size", type=int, default=160,
                   help="samples per frame (160 = 10 ms at 16 kHz)")
    g.add_argument("--frontend", default="linear", choices=["linear", "filterbank"],
                   help="frame -> vector: one linear projection of the raw samples, or a learned "
                        "filterbank's log band energies (generalises better across voices)")
    g.add_argument("--filters", type=int, default=64, help="filterbank: number of filters")
    g.add_argument("--filter-taps", type=int, default=0,
                   help="filterbank: taps per filter (0: half the frame)")
    g.add_argument("--frontend-norm", default=None, choices=["cmn"],
                   help="filterbank: subtract each band's mean over the clip's voiced frames "
                        "(removes a microphone's or room's colouring)")


def frontend_config(a) -> dict:
    """The MambaConfig field of :func:`add_frontend_args`' options: ``frontend``, as the plain
    dict a config is saved as (a training checkpoint's hyper-parameters hold plain data only)."""
    return dict(frontend=dict(frame_size=a.frame_size, kind=a.frontend, filters=a.filters,
                              taps=a.filter_taps, norm=a.frontend_norm))


def train_sources(a) -> None:
    """``a.train`` as a list of Paths: one source from a recipe's string, or several from the
    command line or a recipe's list."""
    if a.train is not None and not isinstance(a.train, list):
        a.train = [a.train]
    if a.train is not None:
        a.train = [Path(t) for t in a.train]
