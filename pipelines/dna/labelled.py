"""Labelled DNA sequences: TSV (``id, label, sequence``) or BED intervals + FASTA.

Every row is checked when read: a bad row is an error naming the file, the line and the
record, never a silent skip.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from torch.utils.data import Dataset

from ..errors import InputError, regular_file
from .fasta import FastaFile
from .tokenizer import DNATokenizer


@dataclass
class Example:
    id: str
    label: Optional[str]
    ids: torch.Tensor  # (length,) token ids


def read_tsv(path, tokenizer: DNATokenizer, require_label: bool = True) -> List[Example]:
    """Rows of a TSV with a header naming ``id``, ``label`` (optional for prediction) and
    ``sequence`` columns (others are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    with open(path, newline="") as f:
        head = f.readline()
        if "\r" in head:
            raise InputError("CRLF (Windows) line ends", path=path, fix=f"dos2unix {path.name}")
        cols = head.rstrip("\n").split("\t")
        need = ["id", "sequence"] + (["label"] if require_label else [])
        missing = [c for c in need if c not in cols]
        if missing:
            raise InputError(f"header line lacks column(s) {missing} (found {cols[:6]})",
                             path=path, fix="the first line must name the columns: "
                                            "id<TAB>label<TAB>sequence")
        reader = csv.reader(f, delimiter="\t")
        out, seen = [], set()
        for n, row in enumerate(reader, 2):
            if not row or not any(row):
                continue
            if len(row) != len(cols):
                raise InputError(f"line {n}: {len(row)} columns, the header has {len(cols)}",
                                 path=path)
            rec = dict(zip(cols, row))
            rid, seq = rec["id"], rec["sequence"].strip()
            if rid in seen:
                raise InputError(f"line {n}: duplicate id {rid!r}", path=path,
                                 fix="give every row a unique id")
            seen.add(rid)
            if not seq:
                raise InputError(f"line {n}: empty sequence", path=path, record=rid)
            label = rec.get("label")
            if require_label and not label:
                raise InputError(f"line {n}: empty label", path=path, record=rid)
            try:
                ids = tokenizer.encode(seq, record=rid, path=path)
            except InputError as e:
                raise InputError(f"line {n}: {e}") from None
            out.append(Example(rid, label, ids))
    if not out:
        raise InputError("no rows after the header", path=path)
    return out


def read_bed_fasta(bed, fasta, tokenizer: DNATokenizer) -> List[Example]:
    """BED rows ``chrom start end label [score strand]`` cut from ``fasta``; strand '-' is
    reverse-complemented.  The id is ``chrom:start-end(strand)``."""
    fa = FastaFile(fasta)
    names = {r.name for r in fa.records}
    out = []
    with open(regular_file(bed)) as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            c = line.rstrip("\n").split("\t")
            if len(c) < 4:
                raise InputError(f"line {n}: expected chrom, start, end, label", path=bed)
            try:
                start, end = int(c[1]), int(c[2])
            except ValueError:
                raise InputError(f"line {n}: start and end must be integers", path=bed) from None
            strand = c[5] if len(c) > 5 else "+"
            if strand not in ("+", "-", "."):
                raise InputError(f"line {n}: strand must be +, - or ., got {strand!r}", path=bed)
            if c[0] not in names:
                raise InputError(f"line {n}: chromosome {c[0]!r} is not in {fasta}", path=bed,
                                 fix=f"records there: {', '.join(sorted(names)[:5])}...")
            length = fa.length(c[0])
            if not 0 <= start < end <= length:
                raise InputError(f"line {n}: interval {start}-{end} is outside {c[0]} (length "
                                 f"{length:,}; BED is 0-based, start < end)", path=bed)
            seq = fa.fetch(c[0], start, end)
            ids = tokenizer.encode(seq, record=c[0], offset=start, path=fasta)
            if strand == "-":
                ids = tokenizer.reverse_complement(ids)
            out.append(Example(f"{c[0]}:{start}-{end}({strand})", c[3], ids))
    if not out:
        raise InputError("no intervals", path=bed)
    return out


def read_labelled(path, tokenizer: DNATokenizer, fasta=None) -> List[Example]:
    path = regular_file(path)  # a FIFO would block
    if path.suffix.lower() == ".bed":
        if fasta is None:
            raise InputError("BED input needs --fasta to cut the sequences from", path=path)
        return read_bed_fasta(path, fasta, tokenizer)
    return read_tsv(path, tokenizer)


class LabelledSet(Dataset):
    """items {"input_ids": (length,), "label": class index, "id"}; labels indexed by ``names``."""

    def __init__(self, examples: Sequence[Example], names: Sequence[str], source=None):
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted({e.label for e in examples if e.label not in index})
        if unknown:
            raise InputError(f"labels {unknown[:5]} do not occur in the training set "
                             f"({', '.join(names)})", path=source)
        self.examples, self.names, self.index = list(examples), list(names), index

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        e = self.examples[i]
        return {"input_ids": e.ids, "label": self.index[e.label], "id": e.id}


def pad_collate(pad_id: int):
    """Right-pad a batch of variable-length items -> input_ids, attention_mask (batch, max),
    and per-position ``labels`` (batch, max) padded with -100 when items carry them."""

    def collate(items):
        L = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), L), pad_id, dtype=torch.long)
        mask = torch.zeros(len(items), L, dtype=torch.long)
        for i, it in enumerate(items):
            n = len(it["input_ids"])
            ids[i, :n] = it["input_ids"]
            mask[i, :n] = 1
        batch = {"input_ids": ids, "attention_mask": mask, "id": [it.get("id") for it in items]}
        if "labels" in items[0]:  # one label per position: padding is not scored (-100)
            batch["labels"] = torch.full((len(items), L), -100, dtype=torch.long)
            for i, it in enumerate(items):
                batch["labels"][i, :len(it["labels"])] = it["labels"]
        if "label" in items[0]:
            batch["label"] = torch.tensor([it["label"] for it in items])
        return batch

    return collate
