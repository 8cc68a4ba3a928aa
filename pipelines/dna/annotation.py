"""Base-level gene annotation from GFF3: one class per base, for per-position fine-tuning.

Classes (``CLASSES``; ``utr`` only when the file has UTRs):

* ``intergenic``: no transcript covers the base;
* ``cds_plus`` / ``cds_minus``: coding sequence on the + / - strand;
* ``intron``: inside a transcript (the parent of its CDS: an mRNA, transcript or gene) but in
  none of its exonic parts;
* ``utr``: five_prime_UTR / three_prime_UTR / UTR features, or the exons of a coding
  transcript outside its CDS.

Within one transcript CDS > UTR > intron.  Two transcripts that claim one base with different
classes (genes on opposite strands that overlap; an isoform's intron over another's exon) are
a conflict: an error by default (``overlaps="error"``), or with ``overlaps="mask"`` those bases
get ``IGNORE`` and are left out of training and scoring.

Codon phase per base (``Annotation.phase``: 0, 1, 2 = position in its codon read along the
gene's strand, -1 outside CDS) comes from the CDS features' phase column, for the classic
codon-position-aware Markov baseline (``pipelines/dna/genefinder.py``).

Every problem is an :class:`InputError` naming the file and line: a record the FASTA lacks, a
feature past the record's end or with start > end, a CDS without a strand, a malformed line.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple
from urllib.parse import unquote

import numpy as np

from ..errors import InputError, regular_file

CLASSES = ("intergenic", "cds_plus", "cds_minus", "intron", "utr")
# the class each class becomes on the other strand (a + CDS read backwards is a - CDS)
STRAND_SWAP = {"cds_plus": "cds_minus", "cds_minus": "cds_plus"}
IGNORE = -1  # label of masked bases (conflicts, or N): not trained on, not scored
UTR_TYPES = {"five_prime_UTR", "three_prime_UTR", "UTR", "five_prime_utr", "three_prime_utr"}
EXON_TYPES = {"exon"}
PARENT_TYPES = {"mRNA", "transcript", "gene", "pseudogene", "primary_transcript"}
_RANK = {"cds": 3, "utr": 2, "intron": 1}  # within one transcript, the stronger claim wins


@dataclass
class Annotation:
    """Per-record class ids (int8, ``IGNORE`` masked) and codon phases, over ``labels``."""

    labels: List[str]
    classes: Dict[str, np.ndarray]  # record -> (length,) int8 class ids
    phase: Dict[str, np.ndarray]  # record -> (length,) int8 codon position, -1 outside CDS
    conflicts: int  # bases masked because transcripts disagreed

    def label_complement(self) -> List[int]:
        """class id -> id of the class it becomes under reverse complement."""
        return [self.labels.index(STRAND_SWAP.get(n, n)) for n in self.labels]


@dataclass
class _Feature:
    line: int
    seqid: str
    type: str
    start: int  # 0-based, end exclusive
    end: int
    strand: str
    phase: int
    attrs: Dict[str, str]


def _open(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="strict")
    return open(path, encoding="utf-8", errors="strict")


def _attrs(text: str) -> Dict[str, str]:
    out = {}
    for part in text.strip().strip(";").split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def read_features(path, lengths: Mapping[str, int]) -> List[_Feature]:
    """The GFF3's features, checked against the FASTA's record ``lengths``."""
    path = regular_file(path)
    feats: List[_Feature] = []
    try:
        with _open(path) as f:
            for n, line in enumerate(f, 1):
                if line.startswith("##FASTA"):
                    break
                if not line.strip() or line.startswith("#"):
                    continue
                cols = line.rstrip("\n\r").split("\t")
                if len(cols) != 9:
                    raise InputError(f"line {n}: {len(cols)} tab-separated columns, GFF3 has 9",
                                     path=path, fix="is this a GFF3 file?")
                seqid, _, ftype, s, e, _, strand, phase, attrs = cols
                seqid = unquote(seqid)
                try:
                    start, end = int(s), int(e)
                except ValueError:
                    raise InputError(f"line {n}: start/end {s!r}/{e!r} are not integers",
                                     path=path) from None
                if seqid not in lengths:
                    shown = ", ".join(list(lengths)[:5]) + (" ..." if len(lengths) > 5 else "")
                    raise InputError(f"line {n}: record {seqid!r} is not in the FASTA "
                                     f"(records: {shown})", path=path,
                                     fix="the GFF3 must annotate the FASTA passed with --fasta")
                if not 1 <= start <= end:
                    raise InputError(f"line {n}: {ftype} {start}..{end} is not a valid range "
                                     "(1-based, start <= end)", path=path)
                if end > lengths[seqid]:
                    raise InputError(f"line {n}: {ftype} {start}..{end} runs past the end of "
                                     f"{seqid} ({lengths[seqid]:,} bases)", path=path,
                                     fix="the annotation is for another assembly?")
                feats.append(_Feature(n, seqid, ftype, start - 1, end, strand,
                                      int(phase) if phase in ("0", "1", "2") else 0,
                                      {k: unquote(v) for k, v in _attrs(attrs).items()}))
    except UnicodeDecodeError:
        raise InputError("not a text GFF3 file (binary content)", path=path) from None
    except (OSError, EOFError) as e:
        raise InputError(f"cannot read ({e})", path=path) from None
    return feats


def _transcripts(feats: List[_Feature], path) -> Dict[str, dict]:
    """Coding transcripts: {id: {"extent": (seqid, start, end), "strand", "cds", "utr",
    "exon"}} where the parts are lists of features; keyed by the CDS's Parent."""
    by_id = {f.attrs["ID"]: f for f in feats if "ID" in f.attrs}
    tx: Dict[str, dict] = {}

    def entry(pid: str, f: _Feature) -> dict:
        if pid not in tx:
            tx[pid] = {"cds": [], "utr": [], "exon": [], "parent": by_id.get(pid), "first": f}
        return tx[pid]

    for f in feats:
        kind = "cds" if f.type == "CDS" else "utr" if f.type in UTR_TYPES else \
            "exon" if f.type in EXON_TYPES else None
        if kind is None:
            continue
        if kind == "cds" and f.strand not in ("+", "-"):
            raise InputError(f"line {f.line}: CDS without a strand ({f.strand!r})", path=path,
                             fix="column 7 must be + or -")
        parents = f.attrs.get("Parent", f.attrs.get("ID", f"line{f.line}")).split(",")
        for pid in parents:
            entry(pid, f)[kind].append(f)
    return {k: v for k, v in tx.items() if v["cds"]}  # non-coding transcripts: intergenic


def _runs_minus(lo: int, hi: int, parts: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """[lo, hi) minus the union of ``parts``: the gaps (introns)."""
    out, pos = [], lo
    for s, e in sorted(parts):
        if s > pos:
            out.append((pos, min(s, hi)))
        pos = max(pos, e)
    if pos < hi:
        out.append((pos, hi))
    return [(s, e) for s, e in out if e > s]


def read_annotation(path, lengths: Mapping[str, int], overlaps: str = "error",
                    utr: Optional[bool] = None) -> Annotation:
    """Class ids and codon phases for every base of every record in ``lengths`` (records the
    GFF3 does not mention are all intergenic).  ``utr``: include the class (None: when the
    file has UTR features or exons around CDS)."""
    if overlaps not in ("error", "mask"):
        raise ValueError(overlaps)
    feats = read_features(path, lengths)
    tx = _transcripts(feats, path)
    if not tx:
        raise InputError("no CDS features: nothing to learn genes from", path=path,
                         fix="a gene annotation in GFF3 with CDS rows is needed")
    # per transcript, its parts as (seqid, start, end, kind); kinds claim bases as bit flags
    bits = {"cds_plus": 1, "cds_minus": 2, "intron": 4, "utr": 8}
    claims = {r: np.zeros(n, np.uint8) for r, n in lengths.items()}
    phase = {r: np.full(n, -1, np.int8) for r, n in lengths.items()}
    has_utr = False
    for t in tx.values():
        cds = t["cds"]
        seqid, strand = cds[0].seqid, cds[0].strand
        for f in cds[1:] + t["utr"] + t["exon"]:
            if f.seqid != seqid:
                raise InputError(f"line {f.line}: a part of transcript on {f.seqid}, the rest on "
                                 f"{seqid}", path=path)
        cds_parts = [(f.start, f.end) for f in cds]
        utr_parts = [(f.start, f.end) for f in t["utr"]]
        for f in t["exon"]:  # exonic but not coding: UTR
            utr_parts += _runs_minus(f.start, f.end, cds_parts)
        has_utr |= bool(utr_parts)
        p = t["parent"]
        lo = min(s for s, _ in cds_parts + utr_parts)
        hi = max(e for _, e in cds_parts + utr_parts)
        if p is not None and p.seqid == seqid:
            lo, hi = min(lo, p.start), max(hi, p.end)
        # one class per base within the transcript: CDS over UTR over intron
        own = np.zeros(hi - lo, np.uint8)
        for s, e in _runs_minus(lo, hi, cds_parts + utr_parts + [(f.start, f.end) for f in t["exon"]]):
            own[s - lo:e - lo] = bits["intron"]
        for s, e in utr_parts:
            own[s - lo:e - lo] = bits["utr"]
        for s, e in cds_parts:
            own[s - lo:e - lo] = bits["cds_plus" if strand == "+" else "cds_minus"]
        claims[seqid][lo:hi] |= own
        ph = phase[seqid]
        for f in cds:
            pos = np.arange(f.start, f.end)
            # phase: bases to skip from the feature's 5' end (along its strand) to a codon start
            along = pos - f.start if strand == "+" else f.end - 1 - pos
            ph[f.start:f.end] = (along - f.phase) % 3
    use_utr = has_utr if utr is None else utr
    labels = [c for c in CLASSES if c != "utr" or use_utr]
    lut = np.full(256, IGNORE, np.int8)  # claim bits -> class id (several bits: conflict)
    lut[0] = labels.index("intergenic")
    for name, b in bits.items():
        lut[b] = labels.index(name) if name in labels else labels.index("intergenic")
    classes, conflicts = {}, 0
    for r, c in claims.items():
        cls = lut[c]
        bad = cls == IGNORE
        n_bad = int(bad.sum())
        if n_bad and overlaps == "error":
            i = int(np.argmax(bad))
            names = [n for n, b in bits.items() if c[i] & b]
            raise InputError(f"{r}:{i + 1:,}: overlapping features give this base two classes "
                             f"({' and '.join(names)}; {n_bad:,} such bases in {r})", path=path,
                             fix="pass --overlaps mask to leave such bases out of training and "
                                 "scoring, or fix the annotation")
        conflicts += n_bad
        phase[r][bad] = -1
        classes[r] = cls
    return Annotation(labels, classes, phase, conflicts)


def segments(classes: np.ndarray, keep=None) -> List[Tuple[int, int, int]]:
    """Runs of one class: (start, end, class id), 0-based end-exclusive, in order; only the
    classes in ``keep`` when given."""
    if classes.size == 0:
        return []
    change = np.flatnonzero(np.diff(classes)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [classes.size]])
    out = [(int(s), int(e), int(classes[s])) for s, e in zip(starts, ends)]
    return [t for t in out if keep is None or t[2] in keep]
