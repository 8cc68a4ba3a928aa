"""Two sets of SNVs with a known answer in M. tuberculosis H37Rv genes: synonymous ones, and
nonsense ones (a new stop codon), for the zero-shot variant-effect check.

    python experiments/mtb_variant_sets.py                  # 500 of each, seed 0
    python experiments/mtb_variant_sets.py --per-set 2000 --seed 1 --out data/variants

Genes come from ``data/genomes/Mtb_H37Rv.prot_table`` (start, end, strand; 1-based); only
genes whose CDS has a length divisible by 3, a start codon (ATG, GTG, TTG) and a stop codon at
its end are used.  Every single-base change of every internal codon is classified with the
standard code: synonymous (same amino acid) or nonsense (a sense codon becomes TAA, TAG or
TGA); a seeded sample of each is written as a VCF (REF from the genome, positions 1-based,
sorted) with at most one variant per gene and set, none within ``--margin`` bases of the
genome's ends (so every window of that size fits).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipelines.dna.fasta import FastaFile  # noqa: E402
from seqmamba.atomic import write_text_atomic  # noqa: E402

GENOME = ROOT / "data" / "genomes" / "Mtb_H37Rv_NC_000962.2.fa.gz"
GENES = ROOT / "data" / "genomes" / "Mtb_H37Rv.prot_table"
BASES = "TCAG"
CODE = dict(zip((a + b + c for a in BASES for b in BASES for c in BASES),
                "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"))
COMP = str.maketrans("ACGT", "TGCA")


def revcomp(s: str) -> str:
    return s.translate(COMP)[::-1]


def genes(fa: FastaFile, chrom: str, limit: int = 0):
    """(start0, end, strand, CDS) of every usable gene (the first ``limit`` lines: 0 = all)."""
    lines = GENES.read_text().splitlines()
    for line in lines[:limit] if limit else lines:
        c = line.split("\t")
        start, end, strand = int(c[1]) - 1, int(c[2]), c[3]
        cds = fa.fetch(chrom, start, end).upper()
        cds = revcomp(cds) if strand == "-" else cds
        if len(cds) % 3 or cds[:3] not in ("ATG", "GTG", "TTG") or CODE.get(cds[-3:]) != "*":
            continue
        yield start, end, strand, cds


def candidates(fa: FastaFile, chrom: str, margin: int, limit: int = 0):
    """{"synonymous": [...], "nonsense": [...]}, each (pos1, ref, alt, gene start) on the genome."""
    n = fa.length(chrom)
    out = {"synonymous": [], "nonsense": []}
    for start, end, strand, cds in genes(fa, chrom, limit):
        for k in range(3, len(cds) - 3, 3):  # internal codons
            codon = cds[k:k + 3]
            aa = CODE.get(codon)
            if aa is None or aa == "*":
                continue
            for j in range(3):
                for b in "ACGT":
                    if b == codon[j]:
                        continue
                    new = codon[:j] + b + codon[j + 1:]
                    kind = "synonymous" if CODE[new] == aa else "nonsense" if CODE[new] == "*" \
                        else None
                    if kind is None:
                        continue
                    if strand == "+":
                        pos0, ref, alt = start + k + j, codon[j], b
                    else:
                        pos0, ref, alt = end - 1 - (k + j), codon[j].translate(COMP), \
                            b.translate(COMP)
                    if margin <= pos0 < n - margin:
                        out[kind].append((pos0 + 1, ref, alt, start))
    return out


def vcf(chrom: str, length: int, rows) -> str:
    head = ["##fileformat=VCFv4.2", f"##contig=<ID={chrom},length={length}>",
            "##source=seqmamba experiments/mtb_variant_sets.py",
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    return "\n".join(head + [f"{chrom}\t{p}\t{i}\t{r}\t{a}\t.\tPASS\t."
                             for p, r, a, i in rows]) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--per-set", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margin", type=int, default=2048)
    p.add_argument("--out", type=Path, default=ROOT / "data" / "variants")
    a = p.parse_args(argv)
    fa = FastaFile(GENOME)
    chrom = fa.records[0].name
    rng = np.random.default_rng(a.seed)
    for kind, rows in candidates(fa, chrom, a.margin).items():
        by_gene = {}
        for r in rows:
            by_gene.setdefault(r[3], []).append(r)
        picks = [g[int(rng.integers(len(g)))] for g in by_gene.values()]  # one per gene
        idx = rng.choice(len(picks), min(a.per_set, len(picks)), replace=False)
        chosen = sorted(picks[i] for i in idx)
        named = [(pos, ref, alt, f"{kind[:3]}{i}") for i, (pos, ref, alt, _) in enumerate(chosen)]
        out = a.out / f"mtb_{kind}.vcf"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(vcf(chrom, fa.length(chrom), named), out)
        print(f"{kind}: {len(rows):,} candidates in {len(by_gene):,} genes -> {len(named)} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
