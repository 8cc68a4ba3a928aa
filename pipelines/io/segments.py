"""Predicted segments of a base-level annotation model, as GFF3 or BED."""

from __future__ import annotations

from pathlib import Path

from seqmamba.atomic import write_text_atomic

from ..errors import InputError


class SegmentWriter:
    """Predicted segments of an annotation model as GFF3 (CDS rows with their strand, intron,
    UTR; column 6 the mean probability) or BED6 (name = class, score = 1000 x probability),
    every class but intergenic, written to a temporary file and renamed when complete."""

    SO_TYPES = {"cds_plus": ("CDS", "+"), "cds_minus": ("CDS", "-"), "intron": ("intron", "."),
                "utr": ("UTR", ".")}

    def __init__(self, path: Path, labels):
        if path.suffix.lower() not in (".gff3", ".gff", ".bed"):
            raise InputError("--segments is written as GFF3 or BED", path=path,
                             fix="name it x.gff3 or x.bed")
        self.path, self.labels, self.rows = path, labels, []
        self.bed = path.suffix.lower() == ".bed"

    def add(self, chrom: str, segs) -> None:
        for s, e, c, p in segs:
            label = self.labels[c]
            if label == "intergenic":
                continue
            so, strand = self.SO_TYPES.get(label, (label, "."))
            if self.bed:
                self.rows.append(f"{chrom}\t{s}\t{e}\t{label}\t{int(round(1000 * p))}\t{strand}\n")
            else:
                self.rows.append(f"{chrom}\tseqmamba\t{so}\t{s + 1}\t{e}\t{p:.3f}\t{strand}\t.\t"
                                 f"ID={label}_{chrom}_{s + 1};class={label}\n")

    def finish(self) -> None:
        head = "" if self.bed else "##gff-version 3\n"
        write_text_atomic(head + "".join(self.rows), self.path)

    def abort(self) -> None:
        pass  # nothing is on disk before finish
