"""What ``seqmamba audio predict`` reads: files, folders, glob patterns and CSV manifests, as one
ordered list of files (and the true labels of manifest clips, for the evaluation mode)."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import InputError, regular_file
from .datasets import read_clips
from .io import AUDIO_EXTENSIONS

_GLOB_CHARS = set("*?[")


def expand_inputs(inputs: List[str], truth: Optional[dict] = None
                  ) -> Tuple[List[Path], List[Tuple[str, str]]]:
    """(files in order, first occurrence kept; (input, error) for inputs naming nothing).

    A CSV manifest (``path,label[,split][,group]``) stands for its clips; their labels and
    groups go into ``truth`` ({absolute path: (label, group)}) for the evaluation mode."""
    files, errors, seen = [], [], set()

    def add(p: Path):
        # absolute: the table's key, so a resume finds a file however it was typed
        key = os.path.normpath(os.path.abspath(p))
        if key not in seen:
            seen.add(key)
            files.append(Path(key))
        return key

    def audio_under(d: Path):
        return sorted(f for f in d.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS
                      and f.is_file() and not any(part.startswith(".")
                                                  for part in f.relative_to(d).parts))

    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            found = audio_under(p)
            if not found:
                errors.append((arg, f"{arg}: folder holds no .wav or .flac files"))
            for f in found:
                add(f)
        elif p.exists() and p.suffix.lower() == ".csv":
            try:
                clips = read_clips(regular_file(p))
            except InputError as e:
                errors.append((arg, str(e)))
                continue
            for c in clips:
                key = add(Path(c.path))
                if truth is not None:
                    truth[key] = (c.label, c.group or "")
        elif p.exists():
            try:
                add(regular_file(p))
            except InputError as e:
                errors.append((arg, str(e)))
        elif _GLOB_CHARS & set(arg):
            found = []
            for m in map(Path, sorted(glob.glob(arg, recursive=True))):
                if m.is_dir():
                    found += audio_under(m)
                elif m.is_file():
                    found.append(m)
            if not found:
                errors.append((arg, f"{arg}: the pattern matches no files"))
            for f in found:
                add(f)
        else:
            errors.append((arg, f"{arg}: no such file or folder"))
    return files, errors
