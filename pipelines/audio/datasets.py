"""Labelled audio clips: a CSV manifest or a folder per label, splits, and a torch Dataset.

Sources
  * CSV with a header naming ``path`` and ``label`` and optionally ``split`` (train / val /
    test) and ``group`` (speaker, voice, accent ...); other columns are ignored.  Relative
    paths are relative to the CSV's folder.
  * a folder with one subfolder per label holding .wav / .flac files (searched recursively);
    a folder holding a ``manifest.csv`` is read through that instead.

Every row is checked when read: a bad row is an :class:`InputError` naming the CSV and the
line, never a silent skip.  Label names are sorted, so class indices do not depend on row
order.  Splits: the ``split`` column when there is one, else whole groups held out (a model
must never be scored on a speaker it trained on), else a stratified random split.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import yaml
from torch.utils.data import Dataset

from ..bundled import bundled
from ..checksums import file_sha256
from ..errors import InputError, regular_file
from .crop import center_crop, random_crop
from .io import AUDIO_EXTENSIONS, DEFAULT_MAX_SECONDS, normalize_peak, read_audio

AUDIO_MANIFEST = bundled("data_manifests", "audio.yaml")

SPLITS = ("train", "val", "test")
_SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                "validation": "val", "dev": "val", "test": "test"}
_HEADER_FIX = "the first line must name the columns: path,label[,split][,group]"


@dataclass(frozen=True)
class Clip:
    path: str  # absolute
    label: str
    split: Optional[str] = None  # "train" / "val" / "test" when the manifest says
    group: Optional[str] = None  # clips of one group always land in the same split
    source: Optional[str] = None  # the CSV or folder that listed it
    line: Optional[int] = None  # its line in the CSV

    def error(self, e: InputError) -> InputError:
        """``e`` (about this clip's file) prefixed with the CSV and line that listed it."""
        if self.line is None:
            return e
        return InputError(f"line {self.line}: {e}", path=self.source)


def read_manifest_csv(path, labels: Optional[Sequence[str]] = None,
                      check_files: bool = True) -> List[Clip]:
    """Rows of a CSV manifest (see the module docstring).  With ``labels`` (e.g. a trained
    model's classes) any other label is an error; ``check_files`` checks every file exists."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such manifest", path=path)
    regular_file(path)  # a folder, or a FIFO that would block
    base = Path(os.path.abspath(path)).parent  # abspath, not resolve: a symlinked CSV's
    known = set(labels) if labels is not None else None  # paths are relative to the link
    out: List[Clip] = []
    seen: Dict[str, int] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: Excel writes a BOM
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise InputError("empty manifest", path=path, fix=_HEADER_FIX)
            cols = [c.strip().lower() for c in header]
            missing = [c for c in ("path", "label") if c not in cols]
            if missing:
                raise InputError(f"header line lacks column(s) {missing} (found {header[:6]})",
                                 path=path, fix=_HEADER_FIX)
            doubled = sorted({c for c in cols if cols.count(c) > 1 and c})
            if doubled:
                raise InputError(f"header line names column(s) {doubled} twice", path=path)
            for row in reader:
                n = reader.line_num  # counts physical lines, so quoted newlines stay right
                if not any(c.strip() for c in row):
                    continue
                if len(row) != len(cols):
                    raise InputError(f"line {n}: {len(row)} columns, the header has {len(cols)} "
                                     f"({','.join(cols)})", path=path)
                rec = dict(zip(cols, (c.strip() for c in row)))
                out.append(_row(rec, n, path, base, known, seen, check_files))
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text file", path=path,
                         fix="give a CSV with a header line path,label") from None
    if not out:
        raise InputError("no rows after the header", path=path)
    return out


def _row(rec: dict, n: int, path: Path, base: Path, known, seen: dict, check_files: bool) -> Clip:
    name, label = rec["path"], rec["label"]
    if not name:
        raise InputError(f"line {n}: empty path", path=path)
    if not label:
        raise InputError(f"line {n}: empty label for {name}", path=path)
    if known is not None and label not in known:
        raise InputError(f"line {n}: unknown label {label!r} for {name} (labels: "
                         f"{', '.join(sorted(known))})", path=path)
    split = None
    if "split" in rec:
        split = _SPLIT_NAMES.get(rec["split"].lower())
        if split is None:
            raise InputError(f"line {n}: split {rec['split']!r} is not train, val or test",
                             path=path)
    group = None
    if "group" in rec:
        group = rec["group"]
        if not group:
            raise InputError(f"line {n}: empty group for {name}", path=path,
                             fix="give every row a group, or drop the group column")
    file = Path(name) if Path(name).is_absolute() else base / name
    key = os.path.normpath(str(file))
    if key in seen:
        raise InputError(f"line {n}: {name} is listed again (first at line {seen[key]})",
                         path=path)
    seen[key] = n
    if check_files and not file.is_file():
        raise InputError(f"line {n}: no such audio file {name} (looked for {file})", path=path)
    return Clip(key, label, split, group, str(path), n)


def read_folder(root) -> List[Clip]:
    """Clips of a folder with one subfolder per label (``root/LABEL/**/*.wav|flac``)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("no such folder", path=root)
    fix = ("put the clips of each label in a subfolder named after it (ROOT/LABEL/clip.wav), "
           "or give a CSV manifest with columns path,label")
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        raise InputError("no label subfolders", path=root, fix=fix)
    out = []
    for d in dirs:
        files = sorted(f for f in d.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS
                       and f.is_file() and not any(p.startswith(".") for p in
                                                   f.relative_to(d).parts))
        if not files:
            raise InputError(f"label folder {d.name!r} holds no .wav or .flac files", path=root,
                             fix="remove the folder or add its clips")
        out += [Clip(os.path.abspath(f), d.name, source=str(root)) for f in files]
    return out


def read_clips(source, labels: Optional[Sequence[str]] = None) -> List[Clip]:
    """A CSV manifest, a folder holding ``manifest.csv``, or a folder per label."""
    source = Path(source)
    if source.is_dir():
        if (source / "manifest.csv").is_file():
            return read_manifest_csv(source / "manifest.csv", labels)
        clips = read_folder(source)
    elif source.exists():
        return read_manifest_csv(source, labels)
    elif source.resolve().is_relative_to(bundled("data", "audio", "generated").resolve()):
        # the synthetic voices of data_manifests/audio.yaml's "generated" set are made on the
        # user's machine, not shipped
        raise InputError("no such file or folder: the synthetic voices are not made yet",
                         path=source, fix="make them with python data/audio/make_digits.py; it "
                         "needs espeak-ng, flite and sox")
    else:
        raise InputError("no such file or folder", path=source)
    if labels is not None:
        unknown = sorted({c.label for c in clips} - set(labels))
        if unknown:
            raise InputError(f"label folder(s) {unknown[:5]} are not among the labels "
                             f"({', '.join(labels)})", path=source)
    return clips


def joined_clip_sets(sources: Sequence, read=None) -> List[Clip]:
    """The clips of several sources (``read``: read_clips by default) as one set; a file listed
    by two of them is an error (it would be counted twice, or land in both splits)."""
    read = read or read_clips
    out: List[Clip] = []
    seen: Dict[str, str] = {}
    for src in sources:
        for c in read(src):
            if c.path in seen:
                raise InputError(f"{c.path} is listed by both {seen[c.path]} and {src}",
                                 path=src, fix="list every clip once")
            seen[c.path] = str(src)
            out.append(c)
    return out


def label_names(clips: Sequence[Clip]) -> List[str]:
    """The sorted distinct labels: class i is ``label_names(clips)[i]``."""
    return sorted({c.label for c in clips})


def split_method(clips: Sequence[Clip], how: str = "auto",
                 val_groups: Optional[Sequence[str]] = None) -> str:
    """``how``, with "auto" resolved to the first method the clips carry the data for:
    "column" (every clip has a split), "group" (``val_groups`` named, or every clip has a
    group), else "stratified"."""
    if how != "auto":
        return how
    with_split = sum(c.split is not None for c in clips)
    if 0 < with_split < len(clips):
        raise InputError(f"{with_split} of {len(clips)} clips carry a split, the others do not",
                         path=clips[0].source, fix="give every clip a split, or none")
    if with_split:
        return "column"
    return "group" if val_groups is not None or all(c.group for c in clips) else "stratified"


def split_fields(how: str, train_clips: Sequence[Clip], val_clips: Sequence[Clip]) -> dict:
    """A report's account of the split: how it was made, the clip counts, the held-out groups."""
    return {"how": how, "train_clips": len(train_clips), "val_clips": len(val_clips),
            "val_groups": sorted({c.group for c in val_clips if c.group})}


def split_clips(clips: Sequence[Clip], how: str = "auto", val_fraction: float = 0.2,
                seed: int = 0, val_groups: Optional[Sequence[str]] = None
                ) -> Dict[str, List[Clip]]:
    """{"train", "val", "test": clips}, each in the input order.

    how: "column" (the manifest's split column), "group" (whole groups held out: the
    ``val_groups`` named, else a seeded ``val_fraction`` of the groups, at least one, never
    all), "stratified" (``val_fraction`` of each label, seeded) or "auto" (the first of these
    the clips carry the data for).  Only "column" fills "test".
    """
    clips = list(clips)
    if not clips:
        raise InputError("no clips to split")
    if not 0 <= val_fraction < 1:
        raise InputError(f"val_fraction must be in [0, 1), got {val_fraction}")
    source = clips[0].source
    how = split_method(clips, how, val_groups)
    if how == "column":
        if any(c.split is None for c in clips):
            raise InputError("a split by column needs a split column", path=source)
        out = {s: [c for c in clips if c.split == s] for s in SPLITS}
        if not out["train"]:
            raise InputError("the split column names no train clips", path=source)
        return out
    if how == "group":
        return _group_split(clips, val_fraction, seed, val_groups, source)
    if how == "stratified":
        return _stratified_split(clips, val_fraction, seed)
    raise InputError(f"unknown split method {how!r} (auto, column, group, stratified)")


def _group_split(clips, val_fraction, seed, val_groups, source) -> Dict[str, List[Clip]]:
    lacking = [c for c in clips if not c.group]
    if lacking:
        raise InputError(f"a group split needs a group for every clip; {len(lacking)} have none "
                         f"(e.g. {lacking[0].path})", path=source)
    groups = sorted({c.group for c in clips})
    if val_groups is not None:
        unknown = [g for g in val_groups if g not in groups]
        if unknown:
            raise InputError(f"held-out group(s) {unknown[:5]} are not in the set (groups: "
                             f"{', '.join(groups[:20])})", path=source)
        held = set(val_groups)
    else:
        if len(groups) < 2:
            raise InputError(f"a group split needs at least 2 groups, found {groups}",
                             path=source, fix="use a stratified split")
        k = round(val_fraction * len(groups))
        k = min(len(groups) - 1, max(1, k) if val_fraction > 0 else 0)
        order = np.random.default_rng(seed).permutation(len(groups))
        held = {groups[i] for i in order[:k]}
    if held >= set(groups):
        raise InputError("holding out every group leaves no training clips", path=source)
    return {"train": [c for c in clips if c.group not in held],
            "val": [c for c in clips if c.group in held], "test": []}


def _stratified_split(clips, val_fraction, seed) -> Dict[str, List[Clip]]:
    rng = np.random.default_rng(seed)
    by_label: Dict[str, List[int]] = defaultdict(list)
    for i, c in enumerate(clips):
        by_label[c.label].append(i)
    held = set()
    for label in sorted(by_label):  # sorted: the draw does not depend on row order of labels
        idx = by_label[label]
        k = round(val_fraction * len(idx))
        if val_fraction > 0 and len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)  # every label in both splits when it can be
        held.update(int(i) for i in rng.permutation(idx)[:k])
    return {"train": [c for i, c in enumerate(clips) if i not in held],
            "val": [c for i, c in enumerate(clips) if i in held], "test": []}


class AudioClips(Dataset):
    """item {"waveform": (num_samples,) float32, "label": class index, "path": str, "group":
    index of the clip's group in ``groups`` (-1: not one of them, or no ``groups``)}.

    Clips are read mono at ``sample_rate`` (resampled when a file's rate differs), scaled
    down to ``peak`` when given, and fitted to ``num_samples`` (None: as long as the file):
    a random crop/pad with ``train`` (item i of epoch e is a pure function of (seed, e, i)),
    else the centre.  With ``probe`` every file is decoded once here, so a bad file (damaged,
    NaN samples, too long) is reported before training starts, naming the CSV line that lists
    it.
    """

    def __init__(self, clips: Sequence[Clip], names: Optional[Sequence[str]] = None,
                 num_samples: Optional[int] = 16000, sample_rate: int = 16000,
                 train: bool = False, seed: int = 0, peak: Optional[float] = None,
                 max_seconds: Optional[float] = DEFAULT_MAX_SECONDS, probe: bool = True,
                 groups: Optional[Sequence[str]] = None):
        self.clips = list(clips)
        self.group_index = {g: i for i, g in enumerate(groups or [])}
        self.names = list(names) if names is not None else label_names(self.clips)
        self.index = {n: i for i, n in enumerate(self.names)}
        for c in self.clips:
            if c.label not in self.index:
                raise c.error(InputError(f"label {c.label!r} of {c.path} is not one of the "
                                         f"labels ({', '.join(self.names)})", path=None))
        if num_samples is not None and num_samples < 1:
            raise InputError(f"num_samples must be positive, got {num_samples}")
        self.num_samples, self.sample_rate, self.train = num_samples, sample_rate, train
        self.seed, self.peak, self.max_seconds, self.epoch = seed, peak, max_seconds, 0
        if probe:  # every sample decoded once, at the file's own rate: a damaged file or one
            for c in self.clips:  # holding NaN fails now, even if training would never draw it
                try:
                    read_audio(c.path, None, mono=False, max_seconds=max_seconds)
                except InputError as e:
                    raise c.error(e) from None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        c = self.clips[i]
        try:
            wave = read_audio(c.path, self.sample_rate, mono=True, max_seconds=self.max_seconds)[0]
        except InputError as e:
            raise c.error(e) from None
        wave = wave[0]
        if self.peak is not None:
            wave = normalize_peak(wave, self.peak)
        if self.num_samples is not None:
            if self.train:
                rng = np.random.default_rng([self.seed, self.epoch, i])
                wave = random_crop(wave, self.num_samples, rng)
            else:
                wave = center_crop(wave, self.num_samples)
        return {"waveform": wave.contiguous(), "label": self.index[c.label], "path": c.path,
                "group": self.group_index.get(c.group, -1)}


def collate(items: Sequence[dict]) -> dict:
    """Stack equal-length items -> waveform (batch, samples) float32, label (batch,) int64, path,
    group (batch,) int64 (-1 for items without one)."""
    lengths = sorted({it["waveform"].shape[-1] for it in items})
    if len(lengths) > 1:
        raise ValueError(f"clips of {len(lengths)} different lengths ({lengths[:4]} ...) in one "
                         f"batch: give AudioClips a num_samples")
    return {"waveform": torch.stack([it["waveform"] for it in items]),
            "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
            "path": [it["path"] for it in items],
            "group": torch.tensor([it.get("group", -1) for it in items], dtype=torch.long)}


def bundled_set(name: str = "spoken_digits_espeak", verify: bool = True) -> dict:
    """A bundled set of ``data_manifests/audio.yaml``: its entry, with ``manifest`` (absolute
    path of its CSV) added; ``verify`` checks the sha256 of the files the entry lists."""
    m = yaml.safe_load(AUDIO_MANIFEST.read_text())
    sets = m.get("sets", {})
    if name not in sets:
        raise InputError(f"no bundled audio set {name!r} (sets: {', '.join(sets)})",
                         path=AUDIO_MANIFEST)
    entry = dict(sets[name])
    root = (AUDIO_MANIFEST.parent / m.get("root", ".") / entry["path"]).resolve()
    for key, f in entry.get("files", {}).items():
        p = root / f["path"]
        if not p.is_file():
            raise InputError(f"{name}: file {key!r} is missing at {p}", path=AUDIO_MANIFEST)
        if verify and file_sha256(p) != str(f["sha256"]):
            raise InputError(f"{name}: {p} does not match its sha256 checksum",
                             path=AUDIO_MANIFEST, fix="restore the original file")
    entry["root"] = str(root)
    entry["manifest"] = str(root / entry["files"]["manifest"]["path"])
    return entry
