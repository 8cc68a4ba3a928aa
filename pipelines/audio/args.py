"""Command-line arguments shared by the audio commands that read labelled clip sets."""

from __future__ import annotations

import argparse
from pathlib import Path

from .io import DEFAULT_MAX_SECONDS


def add_clip_set_args(g: argparse._ArgumentGroup, train_help: str) -> None:
    """--train/--val and, without --val, how the held-out clips are chosen (split_sets)."""
    g.add_argument("--train", type=Path, nargs="+", default=None,
                   help=train_help + "; several are joined into one set")
    g.add_argument("--val", type=Path, default=None, help="held-out clips (CSV or folder)")
    g.add_argument("--split", default="auto", choices=["auto", "column", "group", "stratified"],
                   help="without --val: how to hold clips out (auto: the split column, else "
                        "groups, else stratified by label)")
    g.add_argument("--val-fraction", type=float, default=0.25,
                   help="without --val: fraction of the groups (or of each label) held out")
    g.add_argument("--val-groups", nargs="+", default=None, help="hold out these groups")


def add_clip_reading_args(g: argparse._ArgumentGroup) -> None:
    """How each file is read: level and the longest file accepted."""
    g.add_argument("--peak", type=float, default=None,
                   help="scale each clip down to this peak (default: as recorded)")
    g.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                   help="a longer clip is an error")


def train_sources(a) -> None:
    """``a.train`` as a list of Paths: one source from a recipe's string, or several from the
    command line or a recipe's list."""
    if a.train is not None and not isinstance(a.train, list):
        a.train = [a.train]
    if a.train is not None:
        a.train = [Path(t) for t in a.train]
