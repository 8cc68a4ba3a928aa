"""Data manifests (``data_manifests/*.yaml``): files with checksums, and named splits."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import yaml

from ..bundled import bundled
from ..checksums import file_sha256
from ..errors import InputError
from .windows import Interval, fraction_intervals, read_bed, record_intervals

MANIFESTS = bundled("data_manifests")


def load_manifest(path) -> dict:
    path = Path(path)
    if not path.is_file() and (MANIFESTS / path).is_file():
        path = MANIFESTS / path
    if not path.is_file():
        raise InputError("no such manifest", path=path)
    m = yaml.safe_load(path.read_text())
    root = (path.parent / m.get("root", ".")).resolve()
    for key, f in m.get("files", {}).items():
        f["abspath"] = str(root / f["path"])
    m["_path"] = str(path)
    return m


def manifest_file(m: dict, key: str, verify: bool = True) -> str:
    files = m.get("files", {})
    if key not in files:
        raise InputError(f"manifest has no file {key!r} (files: {', '.join(files)})",
                         path=m["_path"])
    f = files[key]
    p = f["abspath"]
    if not Path(p).is_file():
        raise InputError(f"file {key!r} is missing at {p}", path=m["_path"])
    if verify and "sha256" in f and file_sha256(p) != str(f["sha256"]):
        raise InputError(f"file {key!r} ({p}) does not match its sha256 checksum",
                         path=m["_path"], fix="restore the original file")
    return p


def _intervals(m: dict, entries) -> List[Interval]:
    out = []
    for e in entries:
        p = manifest_file(m, e["file"])
        if "fraction" in e:
            out += fraction_intervals([p], *map(float, e["fraction"]))
        elif "records" in e:
            out += record_intervals([p], records=e["records"])
        elif "bed" in e:
            out += read_bed(Path(m["_path"]).parent / e["bed"], [p])
        else:
            out += record_intervals([p])
    return out


def load_split(manifest, split: str) -> Tuple[List[Interval], List[Interval], List[str]]:
    """(train intervals, held-out intervals, FASTA paths) of a named split."""
    m = load_manifest(manifest)
    splits = m.get("splits", {})
    if split not in splits:
        raise InputError(f"no split {split!r} (splits: {', '.join(splits)})", path=m["_path"])
    s = splits[split]
    train, val = _intervals(m, s["train"]), _intervals(m, s.get("val", s.get("test", [])))
    files = sorted({iv.path for iv in train + val})
    return train, val, files


def split_by_label(manifest, split: str) -> dict:
    """{label: (train intervals, held-out intervals)} for a split with ``labels`` (the file
    keys): the species-of-origin task."""
    m = load_manifest(manifest)
    s = m["splits"][split]
    out = {}
    for label in s["labels"]:
        tr = [e for e in s["train"] if e["file"] == label]
        va = [e for e in s.get("val", []) if e["file"] == label]
        out[label] = (_intervals(m, tr), _intervals(m, va))
    return out
